using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using DTSKD.Testing;

namespace DTSKD.Samples.Serve.Tests;

/// <summary>
/// The service as an operator starts it (<c>dotnet DTSKD.Samples.Serve.dll</c>, real Kestrel): what it refuses to serve
/// at start, and the request faults only real Kestrel produces (bad chunk sizes, a body past the cap).
/// </summary>
[Collection(ServedModel.Collection)]
public sealed class ServerProcessTests(ServedModel model)
{
    private static readonly string Service = typeof(Program).Assembly.Location;

    [Theory]
    [InlineData("dtskd.image_size", "64", "metadata dtskd.image_size is 64, but the model's input is 28x28 pixels.")]
    [InlineData("dtskd.image_size", "abc", "metadata dtskd.image_size is 'abc'; expected the side of the model's input in pixels, a whole number from 1.")]
    [InlineData("dtskd.channels", "3", "metadata dtskd.channels is 3, but the model's input has 1 channels.")]
    [InlineData("dtskd.mean", "0.1,0.2,0.3", "metadata dtskd.mean has 3 values ('0.1,0.2,0.3'); expected one per channel (1).")]
    [InlineData("dtskd.std", "0", "metadata dtskd.std is '0'; expected 1 comma-separated numbers, each a positive standard deviation.")]
    [InlineData("dtskd.decode_size", "100000", "metadata dtskd.decode_size is 100000; expected from dtskd.image_size (28) to 224 pixels.")]
    [InlineData("dtskd.class_names", "[\"a\",\"b\"]", "metadata dtskd.class_names names 2 classes, but the model's logits have 10.")]
    [InlineData("dtskd.class_names", "a, b", "metadata dtskd.class_names is not a JSON array of strings: 'a, b'.")]
    [InlineData("dtskd.std", null, "no 'dtskd.std' metadata: export it with DTSKD.Core.Onnx (the sample's export --format onnx), which records the preprocessing.")]
    public async Task A_model_whose_metadata_cannot_be_served_is_refused_at_start_in_one_line(string key, string? value, string expected)
    {
        var file = Path.Combine(model.Folder, $"bad-{Guid.NewGuid():N}.onnx");
        OnnxMetadata.Rewrite(model.ModelPath, file, m =>
        {
            if (value is null)
            {
                m.Remove(key);
            }
            else
            {
                m[key] = value;
            }
        });

        var (code, errors) = await Start($"--Model:Path={file}");
        code.Should().Be(2);
        errors.Should().Be($"error: '{file}': {expected}");
    }

    [Theory]
    [InlineData("--Model:Top=-3", "setting Model:Top is '-3'; expected how many classes an answer lists, a whole number from 1 to 10,000.")]
    [InlineData("--Model:Top=abc", "setting Model:Top is 'abc'; expected how many classes an answer lists, a whole number from 1 to 10,000.")]
    [InlineData("--Model:MaxImageBytes=-1", "setting Model:MaxImageBytes is '-1'; expected the largest image in bytes, a whole number from 1 to 1,073,741,824.")]
    [InlineData("--Model:MaxImageBytes=9223372036854775807", "setting Model:MaxImageBytes is '9223372036854775807'; expected the largest image in bytes, a whole number from 1 to 1,073,741,824.")]
    [InlineData("--Model:DecodeBudgetBytes=0", "setting Model:DecodeBudgetBytes is '0'; expected the bytes the images decoded at once may take, a whole number from 1,048,576 to 1,099,511,627,776.")]
    [InlineData("--Model:QueueLimit=-1", "setting Model:QueueLimit is '-1'; expected how many requests may wait to be decoded, a whole number from 0 to 100,000.")]
    public async Task A_setting_that_cannot_work_is_refused_at_start_in_one_line(string setting, string expected)
    {
        var (code, errors) = await Start($"--Model:Path={model.ModelPath}", setting);
        code.Should().Be(2);
        errors.Should().Be($"error: {expected}");
    }

    [Fact]
    public async Task Bodies_real_kestrel_cannot_read_get_the_client_s_status_with_a_body_and_no_stack_trace()
    {
        var port = FreePort();
        var info = new ProcessStartInfo("dotnet", [Service, $"--urls=http://127.0.0.1:{port}", $"--Model:Path={model.ModelPath}", "--Model:MaxImageBytes=1000"])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = model.Folder,
        };
        using var server = Process.Start(info)!;
        var log = new StringBuilder();
        server.OutputDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        server.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        try
        {
            await WaitForHealth(port, server, log);
            var chunked = "POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            var cases = new (string What, string Request, string Status, string Message)[]
            {
                ("a chunk size past 2^64", chunked + "ffffffffffffffffff\r\nabc\r\n0\r\n\r\n", "400", "The request body cannot be read"),
                ("a chunk size that is no number", chunked + "zz\r\nabc\r\n0\r\n\r\n", "400", "The request body cannot be read"),
                ("a chunked body past the cap", chunked + "1000\r\n" + new string('x', 4096) + "\r\n0\r\n\r\n", "400", "larger than the 1000-byte limit"),
                ("a declared length past Kestrel's cap", "POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n" + new string('x', 100), "400", "the limit is 1000"),
            };
            foreach (var (what, request, status, message) in cases)
            {
                var answer = await Raw(port, request);
                answer.Should().StartWith($"HTTP/1.1 {status}", what).And.Contain("application/json", what).And.Contain(message, what);
            }

            // A client slower than Kestrel's minimum body rate (240 bytes/s after a 5 s grace): 408 with a body.
            var slow = await Slow(port, "POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 900\r\nConnection: close\r\n\r\n");
            slow.Should().StartWith("HTTP/1.1 408").And.Contain("application/json").And.Contain("The request body cannot be read");
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }

        lock (log)
        {
            log.ToString().Should().NotContain("nhandled exception").And.NotContain("   at ", "no client fault logs a stack trace");
        }
    }

    private async Task<(int Code, string Errors)> Start(params string[] settings)
    {
        var info = new ProcessStartInfo("dotnet", [Service, "--urls=http://127.0.0.1:0", .. settings])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = model.Folder,
        };
        using var process = Process.Start(info)!;
        var errors = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"the service started with {string.Join(' ', settings)} did not exit: {await output}");
        }

        return (process.ExitCode, (await errors).TrimEnd());
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task WaitForHealth(int port, Process server, StringBuilder log)
    {
        using var client = new HttpClient();
        for (var i = 0; i < 300; i++)
        {
            if (server.HasExited)
            {
                throw new InvalidOperationException($"the service exited with {server.ExitCode}: {log}");
            }

            try
            {
                using var response = await client.GetAsync(new Uri($"http://127.0.0.1:{port}/health"));
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"the service did not answer /health in 30 s: {log}");
    }

    /// <summary>Sends the headers, then one byte of body a second, until the server answers (at most 20 s).</summary>
    private static async Task<string> Slow(int port, string headers)
    {
        using var socket = new TcpClient();
        await socket.ConnectAsync(IPAddress.Loopback, port);
        var stream = socket.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(headers));
        using var done = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var trickle = Task.Run(async () =>
        {
            try
            {
                while (!done.IsCancellationRequested)
                {
                    await stream.WriteAsync("x"u8.ToArray(), done.Token);
                    await Task.Delay(1000, done.Token);
                }
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException)
            {
                // The server closed the connection after answering, or the test is over.
            }
        });
        using var reader = new StreamReader(stream, Encoding.ASCII);
        var answer = await reader.ReadToEndAsync(done.Token);
        await done.CancelAsync();
        await trickle;
        return answer;
    }

    private static async Task<string> Raw(int port, string request)
    {
        using var socket = new TcpClient();
        await socket.ConnectAsync(IPAddress.Loopback, port);
        var stream = socket.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        using var reader = new StreamReader(stream, Encoding.ASCII);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        return await reader.ReadToEndAsync(timeout.Token);
    }
}
