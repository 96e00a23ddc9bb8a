using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Reflection;
using System.Text;
using DTSKD.Core.Models;
using DTSKD.Core.Onnx;
using SkiaSharp;
using DTSKD.Testing;
using static TorchSharp.torch;

namespace DTSKD.Benchmarks;

/// <summary>
/// The serving sample under load, as a client sees it: the real server process on an exported classifier, good requests
/// at 16 and 64 concurrent, then the same beside 48 small decompression bombs (24 1-bit 9999x9999 PNGs of 12 KB, 24
/// 154-byte BMPs claiming 9999x9999), with requests per second, p50/p99, /health and the server's peak resident memory;
/// then <c>predict --onnx</c> over 10,000 image paths: time to the first answer, in all, and peak memory.
/// </summary>
public static class ServeLoadBench
{
    public static int Run(int requests, double seconds, int files, int bombs, string? output, string command)
    {
        var inv = CultureInfo.InvariantCulture;
        if (requests < 1 || files < 1 || bombs < 0 || bombs % 2 != 0 || seconds is < 0 or > 3600)
        {
            Console.Error.WriteLine($"error: --requests ({requests}) and --files ({files}) must be 1 or more, --bombs ({bombs}) an even number from 0 (half PNGs, half BMPs), --seconds ({seconds.ToString(inv)}) from 0 to 3600.");
            return 2;
        }

        var serve = Built("ServeDll");
        var sample = Built("SampleDll");
        if (serve is null || sample is null)
        {
            Console.Error.WriteLine("error: the server and the sample are not built beside the benchmarks: dotnet build DTSKD.Core.sln -c Release.");
            return 1;
        }

        Console.WriteLine($"Machine: {MachineInfo.Describe(CPU)}");
        var work = Directory.CreateTempSubdirectory("dtskd-serve-bench-");
        try
        {
            // The sample's small-width classifier at CIFAR's 32 pixels: what a user serves after `export --format onnx`.
            manual_seed(1);
            using (var model = MultiBranchModels.Create("resnet18_dtskd", new MultiBranchModelOptions { ClassCount = 100, BaseWidth = 16, NeckWidth = 128 }))
            {
                model.eval();
                OnnxExport.Export(model, Path.Combine(work.FullName, "model.onnx"), new OnnxExportOptions { ImageSize = 32, Mean = [0.5, 0.5, 0.5], Std = [0.25, 0.25, 0.25], FoldBatchNorm = true });
            }

            var good = GoodPng();
            var rows = new List<string>();
            var port = FreePort();
            var server = Start(serve, port, Path.Combine(work.FullName, "model.onnx"));
            using var stopServer = new Stopper(server);
            using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
            {
                BaseAddress = new Uri($"http://127.0.0.1:{port}"),
                Timeout = TimeSpan.FromMinutes(5),
            };
            WaitHealthy(client, server);
            Load(client, good, 16, requests, 0, CancellationToken.None); // warm-up: JIT, thread pool, ONNX Runtime's arenas
            var idle = ResetPeak(server);
            foreach (var attacked in new[] { false, true })
            {
                foreach (var concurrency in new[] { 16, 64 })
                {
                    ResetPeak(server);
                    var (attack, health) = attacked ? Attack(client, bombs / 2) : (null, null);
                    var clock = Stopwatch.StartNew();
                    var answered = Load(client, good, concurrency, requests, seconds, CancellationToken.None, attack);
                    var elapsed = clock.Elapsed.TotalSeconds;
                    var bombStatus = attack is null || attack.Result.Length == 0 ? "-" : Statuses(attack.Result);
                    var healthMax = health is null ? "-" : string.Create(inv, $"{health.Stop():F0}");
                    var latencies = answered.Select(a => a.Milliseconds).ToList();
                    rows.Add(string.Create(inv,
                        $"| {(attacked ? $"beside {bombs} bombs" : "alone")} | {concurrency} | {answered.Count / elapsed:F0} | {Percentile(latencies, 0.5):F1} | {Percentile(latencies, 0.99):F1} | {Statuses(answered)} | {bombStatus} | {healthMax} | {Peak(server) / 1048576.0:F0} |"));
                    Console.WriteLine(rows[^1]);
                }
            }

            var predict = Predict(sample, Path.Combine(work.FullName, "model.onnx"), work.FullName, good, files);
            Console.WriteLine(predict);

            var text = new StringBuilder();
            text.AppendLine("## Serving under load (the serving sample, a real Kestrel process)").AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"Measured on: {MachineInfo.Describe(CPU)}.").AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"Command: `{command}`. The server (`samples/DTSKD.Samples.Serve`, default settings: 1 GiB decode budget, queue of 64) serves resnet18_dtskd's exported classifier (width 16/128, 100 classes, 32 x 32 RGB, BatchNorm folded). Each row sends good requests (a 32 x 32 PNG, {good.Length:N0} bytes) from that many clients at once, at least {requests:N0} and for at least {seconds.ToString(inv)} s; an attacked row also sends {bombs} bombs at its start ({bombs / 2} 1-bit 9999 x 9999 PNGs of {BombPng().Length:N0} bytes, {bombs / 2} BMP headers of 154 bytes claiming 9999 x 9999) and runs until every bomb is answered, probing /health every 50 ms. Peak RSS is the server's VmHWM, reset before each row. The client runs on the same cores. Server resident memory after warm-up: {idle / 1048576.0:F0} MB. Targets (issue 31, with 48 bombs): peak RSS at most 1.5 GB and /health at most 0.5 s under the bombs, good p99 within 10x of unloaded.");
            text.AppendLine();
            text.AppendLine("| good requests | concurrent | requests/s | p50, ms | p99, ms | good statuses | bomb statuses | /health max, ms | peak RSS, MB |");
            text.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
            foreach (var row in rows)
            {
                text.AppendLine(row);
            }

            text.AppendLine().AppendLine(predict);
            Console.WriteLine();
            Console.Write(text);
            if (output is not null)
            {
                BenchOutput.Write(output, text.ToString());
                Console.WriteLine($"Written to {output}");
            }

            return 0;
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    /// <summary>Good requests from <paramref name="concurrency"/> clients: at least <paramref name="requests"/>, for at least <paramref name="seconds"/>, and until <paramref name="until"/> is done.</summary>
    private static List<(int Status, double Milliseconds)> Load(HttpClient client, byte[] good, int concurrency, int requests, double seconds, CancellationToken cancellationToken, Task? until = null)
    {
        var sent = 0;
        var clock = Stopwatch.StartNew();
        var results = new List<(int, double)>[concurrency];
        var clients = Enumerable.Range(0, concurrency).Select(c => Task.Run(async () =>
        {
            results[c] = [];
            while (Interlocked.Increment(ref sent) <= requests || clock.Elapsed.TotalSeconds < seconds || until is { IsCompleted: false })
            {
                results[c].Add(await Post(client, good, "image/png", cancellationToken).ConfigureAwait(false));
            }
        }, cancellationToken)).ToArray();
        Task.WaitAll(clients, cancellationToken);
        return [.. results.SelectMany(r => r)];
    }

    private static async Task<(int Status, double Milliseconds)> Post(HttpClient client, byte[] body, string type, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue(type);
        using var response = await client.PostAsync(new Uri("/classify", UriKind.Relative), content, cancellationToken).ConfigureAwait(false);
        _ = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        return ((int)response.StatusCode, clock.Elapsed.TotalMilliseconds);
    }

    /// <summary>The bombs, all at once (<paramref name="each"/> PNGs and as many BMPs), and /health probed until they are all answered.</summary>
    private static (Task<(int Status, double Milliseconds)[]> Bombs, HealthProbe Health) Attack(HttpClient client, int each)
    {
        var png = BombPng();
        var bmp = BombBmp();
        var bombs = Task.WhenAll(Enumerable.Range(0, 2 * each).Select(i => Task.Run(() => i % 2 == 0 ? Post(client, png, "image/png", CancellationToken.None) : Post(client, bmp, "image/bmp", CancellationToken.None))));
        return (bombs, new HealthProbe(client, bombs));
    }

    /// <summary>/health every 50 ms on a fresh connection of its own, as a load balancer probes.</summary>
    private sealed class HealthProbe
    {
        private readonly Task<double> _slowest;

        public HealthProbe(HttpClient shared, Task until)
        {
            var address = shared.BaseAddress!;
            _slowest = Task.Run(async () =>
            {
                var slowest = 0.0;
                do
                {
                    using var probe = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(1) };
                    var clock = Stopwatch.StartNew();
                    using (var response = await probe.GetAsync(new Uri("/health", UriKind.Relative)).ConfigureAwait(false))
                    {
                        response.EnsureSuccessStatusCode();
                    }

                    slowest = Math.Max(slowest, clock.Elapsed.TotalMilliseconds);
                    await Task.Delay(50).ConfigureAwait(false);
                }
                while (!until.IsCompleted);
                return slowest;
            });
        }

        public double Stop() => _slowest.GetAwaiter().GetResult();
    }

    /// <summary><c>predict --onnx</c> over <paramref name="count"/> image files given as one @file of paths: by default, and as one batch (what it did before it streamed).</summary>
    private static string Predict(string sample, string model, string work, byte[] good, int count)
    {
        var folder = Directory.CreateDirectory(Path.Combine(work, "images")).FullName;
        var paths = new string[count];
        for (var i = 0; i < count; i++)
        {
            paths[i] = Path.Combine(folder, string.Create(CultureInfo.InvariantCulture, $"image{i:D5}.png"));
            File.WriteAllBytes(paths[i], good);
        }

        var list = Path.Combine(work, "paths.txt");
        File.WriteAllLines(list, paths);
        var streamed = PredictOnce(sample, model, list, count, null);
        var whole = PredictOnce(sample, model, list, count, count);
        return string.Create(CultureInfo.InvariantCulture,
            $"`predict --onnx` over {count:N0} image paths (one @file; peak RSS sampled every 20 ms; target at most 400 MB): with the default --batch-size 64, first answer after {streamed.First:F2} s, all {count:N0} in {streamed.Total:F2} s, peak RSS {streamed.Peak / 1048576.0:F0} MB; as one batch (--batch-size {count}, what predict did before it streamed), first after {whole.First:F2} s, all in {whole.Total:F2} s, peak RSS {whole.Peak / 1048576.0:F0} MB.");
    }

    private static (double First, double Total, long Peak) PredictOnce(string sample, string model, string list, int count, int? batchSize)
    {
        string[] batch = batchSize is { } b ? ["--batch-size", b.ToString(CultureInfo.InvariantCulture)] : [];
        var info = new ProcessStartInfo("dotnet", [sample, "predict", "--onnx", model, "--top", "1", .. batch, "@" + list]) { RedirectStandardOutput = true, RedirectStandardError = true };
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(info)!;
        var errors = process.StandardError.ReadToEndAsync();
        double? first = null;
        var lines = 0;
        long peak = 0;
        using (new Timer(_ => Interlocked.Exchange(ref peak, Math.Max(Interlocked.Read(ref peak), Peak(process))), null, 0, 20))
        {
            while (process.StandardOutput.ReadLine() is not null)
            {
                first ??= clock.Elapsed.TotalSeconds;
                lines++;
            }

            process.WaitForExit();
        }

        var total = clock.Elapsed.TotalSeconds;
        if (process.ExitCode != 0 || lines != count)
        {
            throw new InvalidOperationException($"predict --onnx answered {lines} of {count} images, exit {process.ExitCode}: {errors.Result}");
        }

        return (first ?? total, total, Interlocked.Read(ref peak));
    }

    private static Process Start(string dll, int port, string model)
    {
        var info = new ProcessStartInfo("dotnet", [dll, $"--urls=http://127.0.0.1:{port}", $"--Model:Path={model}", "--Logging:LogLevel:Default=Warning"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Stop(process);
        return process;
    }

    /// <summary>Kills the server when the benchmark is done with it (and on any way out of <see cref="Run"/>).</summary>
    private sealed class Stopper(Process process) : IDisposable
    {
        public void Dispose()
        {
            Stop(process);
            process.Dispose();
        }
    }

    private static void Stop(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    private static void WaitHealthy(HttpClient client, Process server)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (server.HasExited)
            {
                throw new InvalidOperationException($"the server exited at start ({server.ExitCode}).");
            }

            try
            {
                using var response = client.GetAsync(new Uri("/health", UriKind.Relative)).GetAwaiter().GetResult();
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException) when (clock.Elapsed < TimeSpan.FromSeconds(60))
            {
                Thread.Sleep(200);
            }
        }
    }

    /// <summary>A process's peak resident memory (VmHWM), in bytes; 0 once it has exited.</summary>
    private static long Peak(Process process)
    {
        try
        {
            var line = File.ReadLines($"/proc/{process.Id}/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
            return line is null ? 0 : 1024 * long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            return 0; // exited (a zombie has no memory lines) or gone between two samples
        }
    }

    /// <summary>Starts the kernel's peak afresh at the current resident size (writing 5 to clear_refs); returns that size.</summary>
    private static long ResetPeak(Process process)
    {
        File.WriteAllText($"/proc/{process.Id}/clear_refs", "5");
        return Peak(process);
    }

    private static string Statuses(IEnumerable<(int Status, double Milliseconds)> results) =>
        string.Join(", ", results.GroupBy(r => r.Status).OrderBy(g => g.Key).Select(g => string.Create(CultureInfo.InvariantCulture, $"{g.Key} x{g.Count()}")));

    private static double Percentile(List<double> values, double p)
    {
        values.Sort();
        return values[Math.Min(values.Count - 1, (int)(p * values.Count))];
    }

    private static string? Built(string key)
    {
        var path = typeof(ServeLoadBench).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().SingleOrDefault(a => a.Key == key)?.Value;
        return path is not null && File.Exists(path) ? path : null;
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>A 32 x 32 RGB photo-sized request: seeded noise, so every run sends the same bytes.</summary>
    private static byte[] GoodPng()
    {
        var rng = new Random(5);
        using var bitmap = new SKBitmap(32, 32);
        for (var y = 0; y < 32; y++)
        {
            for (var x = 0; x < 32; x++)
            {
                bitmap.SetPixel(x, y, new SKColor((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256)));
            }
        }

        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    // The serving tests' bombs (tests/DTSKD.Testing).
    private static byte[] BombPng() => Bombs.Png(9999);

    private static byte[] BombBmp() => Bombs.Bmp(9999);
}
