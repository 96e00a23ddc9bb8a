using System.Diagnostics;
using System.Security.Cryptography;
using DTSKD.Samples.Cifar100;
using Spectre.Console.Testing;

namespace DTSKD.Samples.Cifar100.Tests;

/// <summary>What the sample's tests share: a temporary folder, CIFAR-100 files in its binary format, tiny runs, in-process and process runs.</summary>
public abstract class SampleTestBase : IDisposable
{
    protected const int Cifar100RecordSize = 3074;
    /// <summary>The test's own folder, removed afterwards.</summary>
    protected DirectoryInfo Dir { get; } = Directory.CreateTempSubdirectory("dtskd-sample-");

    public void Dispose()
    {
        Dir.Delete(recursive: true);
        GC.SuppressFinalize(this);
    }

    protected static byte[] CifarRecords(int count, int seed)
    {
        var rng = new Random(seed);
        var bytes = new byte[count * Cifar100RecordSize];
        rng.NextBytes(bytes);
        for (var r = 0; r < count; r++)
        {
            var label = (byte)(r % 100);
            bytes[r * Cifar100RecordSize] = (byte)(label / 5);
            bytes[(r * Cifar100RecordSize) + 1] = label;
        }

        return bytes;
    }

    protected string WriteCifar100(int train, int test)
    {
        var data = Path.Combine(Dir.FullName, "data");
        var folder = Directory.CreateDirectory(Path.Combine(data, "cifar-100-binary"));
        File.WriteAllBytes(Path.Combine(folder.FullName, "train.bin"), CifarRecords(train, 1));
        File.WriteAllBytes(Path.Combine(folder.FullName, "test.bin"), CifarRecords(test, 2));
        File.WriteAllLines(Path.Combine(folder.FullName, "fine_label_names.txt"), Enumerable.Range(0, 100).Select(i => $"kind{i}"));
        return data;
    }

    protected static async Task<(int Code, string Output, string Errors)> Run(params string[] args) => await Run(new SampleStop(), args);

    protected static async Task<(int Code, string Output, string Errors)> Run(Action<DTSKD.Core.Training.Trainer> configureTrainer, params string[] args)
    {
        var console = new TestConsole();
        console.Profile.Width = 400;
        using var errors = new StringWriter();
        using var stop = new SampleStop();
        var code = await Sample.RunAsync(args, console, errors, stop, configureTrainer: configureTrainer);
        return (code, console.Output, errors.ToString());
    }

    protected static async Task<(int Code, string Output, string Errors)> Run(SampleStop stop, params string[] args)
    {
        var console = new TestConsole();
        console.Profile.Width = 400;
        using var errors = new StringWriter();
        var code = await Sample.RunAsync(args, console, errors, stop);
        return (code, console.Output, errors.ToString());
    }

    /// <summary>Every file under a folder with its SHA-256, and the folder's siblings: what "nothing changed" compares.</summary>
    protected static Dictionary<string, string> Snapshot(string folder)
    {
        var result = new Dictionary<string, string>();
        var parent = Path.GetDirectoryName(folder)!;
        if (Directory.Exists(parent))
        {
            foreach (var entry in Directory.GetFileSystemEntries(parent))
            {
                result["sibling:" + Path.GetFileName(entry)] = string.Empty;
            }
        }

        if (Directory.Exists(folder))
        {
            // The lock and its owner note say who holds the folder now, not what the run holds.
            foreach (var file in Directory.GetFiles(folder, "*", SearchOption.AllDirectories).Where(f => Path.GetFileName(f) is not (".lock" or ".lock.owner")))
            {
                result[Path.GetRelativePath(folder, file)] = Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));
            }
        }

        return result;
    }

    protected (string Data, string Experiments, string[] Common) TinyRun(string name, int train = 300, int test = 100, int batch = 64, int logInterval = 2)
    {
        var data = WriteCifar100(train, test);
        var experiments = Path.Combine(Dir.FullName, "experiments");
        return (data, experiments, ["--data-path", data, "--experiments-dir", experiments, "--experiments-name", name, "--base-width", "16", "--neck-width", "16",
            "--batch-size", batch.ToString(System.Globalization.CultureInfo.InvariantCulture), "--log-interval", logInterval.ToString(System.Globalization.CultureInfo.InvariantCulture), "--device", "cpu",

            // auto means bf16 on CPUs with native bfloat16 only: pinned, so the suite trains the same on every CI machine.
            "--precision", "fp32"]);
    }

    protected string WriteImage(byte[] records, int index, string name, SkiaSharp.SKEncodedImageFormat format)
    {
        using var bitmap = new SkiaSharp.SKBitmap(32, 32);
        var offset = (index * Cifar100RecordSize) + 2;
        for (var y = 0; y < 32; y++)
        {
            for (var x = 0; x < 32; x++)
            {
                var at = offset + (y * 32) + x;
                bitmap.SetPixel(x, y, new SkiaSharp.SKColor(records[at], records[at + 1024], records[at + 2048]));
            }
        }

        var path = Path.Combine(Dir.FullName, name);
        using var image = SkiaSharp.SKImage.FromBitmap(bitmap);
        using var encoded = image.Encode(format, 95);
        File.WriteAllBytes(path, encoded.ToArray());
        return path;
    }

    /// <summary>
    /// A folder of 32x32 images in <c>root/train/&lt;class&gt;</c> and <c>root/val/&lt;class&gt;</c>, PNG and JPEG by turns: each
    /// class a colour (red, green, blue...) with noise, so a short run learns something.
    /// </summary>
    protected string WriteImageFolder(string name, int trainPerClass = 24, int valPerClass = 8, int classes = 3)
    {
        var root = Path.Combine(Dir.FullName, name);
        var rng = new Random(7);
        for (var c = 0; c < classes; c++)
        {
            foreach (var (split, count) in new[] { ("train", trainPerClass), ("val", valPerClass) })
            {
                for (var i = 0; i < count; i++)
                {
                    using var bitmap = new SkiaSharp.SKBitmap(32, 32);
                    for (var y = 0; y < 32; y++)
                    {
                        for (var x = 0; x < 32; x++)
                        {
                            byte Channel(int k) => (byte)Math.Clamp((k == c % 3 ? 200 : 40) + rng.Next(-40, 40), 0, 255);
                            bitmap.SetPixel(x, y, new SkiaSharp.SKColor(Channel(0), Channel(1), Channel(2)));
                        }
                    }

                    var png = i % 2 == 0;
                    var path = Path.Combine(root, split, $"class{c}", $"{i:D3}.{(png ? "png" : "jpg")}");
                    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    using var image = SkiaSharp.SKImage.FromBitmap(bitmap);
                    using var encoded = image.Encode(png ? SkiaSharp.SKEncodedImageFormat.Png : SkiaSharp.SKEncodedImageFormat.Jpeg, 95);
                    File.WriteAllBytes(path, encoded.ToArray());
                }
            }
        }

        return root;
    }

    /// <summary>The sample as a separate process (signals, locks and file-size limits act on processes), through bash so a test can set limits first.</summary>
    protected static Process StartSample(IEnumerable<string> args, string? shellPrefix = null)
    {
        var sample = Path.Combine(AppContext.BaseDirectory, "DTSKD.Samples.Cifar100.dll");
        var command = $"{shellPrefix}exec dotnet {Quote(sample)} {string.Join(' ', args.Select(Quote))}";
        var info = new ProcessStartInfo("bash", ["-c", command]) { RedirectStandardOutput = true, RedirectStandardError = true };
        return Process.Start(info)!;
    }

    /// <summary>Runs the sample as a process to its end.</summary>
    protected static async Task<(int Code, string Output, string Errors)> RunProcess(IEnumerable<string> args, string? shellPrefix = null)
    {
        using var process = StartSample(args, shellPrefix);
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await output, await errors);
    }

    private static string Quote(string arg) => "'" + arg.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
