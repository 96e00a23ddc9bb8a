using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using DTSKD.Core;
using DTSKD.Core.Data;
using DTSKD.Core.Images;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using static TorchSharp.torch;

namespace DTSKD.Benchmarks;

/// <summary>
/// Image folders: decode-and-resize throughput against torchvision's ImageFolder + DataLoader(num_workers = 2) on the same
/// folder with the same transforms, the two sides alternating in one run; the cached data path's share of a training
/// step at 32 and 224 pixels; and a streamed folder larger than the memory budget, with resident memory over its epochs.
/// </summary>
public static class ImageFolderBench
{
    public static int Run(string folder, int size, int workers, string? python, int rounds, string? output, string command)
    {
        var inv = CultureInfo.InvariantCulture;
        var report = new StringBuilder();
        var machine = MachineInfo.Describe(CPU);
        Console.WriteLine(machine);
        var scratch = Directory.CreateTempSubdirectory("dtskd-image-bench-").FullName;
        try
        {
            // 1. Decode and resize, ours and torchvision's, alternating.
            var ours = new List<double>();
            var theirs = new List<double>();
            var count = 0;
            for (var round = 0; round < rounds; round++)
            {
                var clock = Stopwatch.StartNew();
                var options = new ImageFolderOptions
                {
                    ImageSize = size, Augmentation = ImageFolderAugmentation.PadCropFlip, Mode = ImageFolderMode.Streaming, HoldOutFraction = 0,
                    Workers = workers, CacheDirectory = Path.Combine(scratch, $"verify{round}"),
                };
                var scan = ImageFolderScan.Read(folder, 0, 1);
                var (key, family) = ImageCache.Keys(scan, options);
                var pass = ImageCache.Build(options.CacheDirectory, key, family, scan, options, writePixels: false, null, CancellationToken.None);
                count = pass.Train + pass.Test;
                ours.Add(count / clock.Elapsed.TotalSeconds);
                Console.WriteLine(string.Create(inv, $"round {round + 1}: DTSKD.Core.Images {ours[^1]:F0} images/s"));
                if (python is not null)
                {
                    theirs.Add(Torchvision(python, folder, size, workers));
                    Console.WriteLine(string.Create(inv, $"round {round + 1}: torchvision       {theirs[^1]:F0} images/s"));
                }
            }

            report.AppendLine("## Image folders");
            report.AppendLine();
            report.AppendLine(CultureInfo.InvariantCulture, $"Measured on: {machine}. Command: `{command}` ({DateTime.UtcNow:yyyy-MM-dd}).");
            report.AppendLine();
            report.AppendLine(CultureInfo.InvariantCulture,
                $"### Decode and resize ({count:N0} JPEGs of 300-500 pixels a side to {size}x{size}, {workers} workers; rounds alternate)");
            report.AppendLine();
            report.AppendLine("| round | DTSKD.Core.Images, images/s | torchvision ImageFolder + DataLoader, images/s | ratio |");
            report.AppendLine("| --- | --- | --- | --- |");
            for (var r = 0; r < rounds; r++)
            {
                var t = r < theirs.Count ? theirs[r].ToString("F0", inv) : "-";
                var ratio = r < theirs.Count ? (ours[r] / theirs[r]).ToString("F2", inv) + "x" : "-";
                report.AppendLine(CultureInfo.InvariantCulture, $"| {r + 1} | {ours[r]:F0} | {t} | {ratio} |");
            }

            report.AppendLine();

            // 2. The cache's share of a training step.
            report.AppendLine("### The cached data path's share of a training step");
            report.AppendLine();
            report.AppendLine("Data = reading a batch from the memory-mapped cache and augmenting it; step = forward, DTSKD loss, backward and SGD step of resnet18_dtskd at reference width; float32, the median of 5 after 2 warm-up steps.");
            report.AppendLine();
            report.AppendLine("| images | augmentation | stem | batch | data, ms | model step, ms | data share |");
            report.AppendLine("| --- | --- | --- | --- | --- | --- | --- |");
            foreach (var (px, batch) in new[] { (32, 128), (224, 16) })
            {
                var row = CacheShare(folder, px, batch, workers, Path.Combine(scratch, $"cache{px}"));
                report.AppendLine(row);
                Console.WriteLine(row);
            }

            report.AppendLine();

            // 3. Streaming past the memory budget: resident memory over three epochs.
            var (rss, streamed, bytes, peak) = Streaming(folder, size, workers, Path.Combine(scratch, "stream"));
            report.AppendLine(CultureInfo.InvariantCulture,
                $"### Streaming a folder larger than the memory budget ({bytes / 1e6:F0} MB decoded against a 64 MB budget; three epochs of batches of 64, {workers} workers, 4 batches ahead)");
            report.AppendLine();
            report.AppendLine(CultureInfo.InvariantCulture,
                $"{streamed:N0} batches; resident memory after the first epoch's first batch {rss[0] / 1e6:F0} MB, after each epoch {string.Join(", ", rss.Skip(1).Select(v => (v / 1e6).ToString("F0", inv)))} MB; peak while streaming {peak / 1e6:F0} MB (the whole process, TorchSharp and the earlier measurements' cached allocations included).");
            report.AppendLine();
            Console.Write(report);
            if (output is not null)
            {
                BenchOutput.Write(output, report.ToString());
            }

            return 0;
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    private static double Torchvision(string python, string folder, int size, int workers)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "imagefolder_bench.py");
        var info = new ProcessStartInfo(python, [script, folder, size.ToString(CultureInfo.InvariantCulture), workers.ToString(CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
        };
        using var process = Process.Start(info)!;
        var json = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{python} {script} failed with exit code {process.ExitCode}.");
        }

        return JsonDocument.Parse(json).RootElement.GetProperty("images_per_second").GetDouble();
    }

    private static string CacheShare(string folder, int size, int batch, int workers, string cache)
    {
        var inv = CultureInfo.InvariantCulture;
        using var data = ImageFolder.Open(folder, new ImageFolderOptions { ImageSize = size, Mode = ImageFolderMode.Cached, CacheDirectory = cache, Workers = workers, HoldOutFraction = 0.1 });
        using var reader = data.Train.OpenReader(CPU);
        var sampler = new BatchSampler(data.Train.Count, batch, seed: 1);
        var step = 0;
        using var order = sampler.Order(0);
        var batches = reader.Read(order, batch).GetEnumerator();
        var dataTime = Timing.Measure("data", 2, 5, () =>
        {
            using var scope = NewDisposeScope();
            if (!batches.MoveNext())
            {
                throw new InvalidOperationException("The folder has too few images for the measurement.");
            }

            using var b = batches.Current;
            _ = data.Preprocessing.Augment(b.Images, 1, 0, step++);
        });
        batches.Dispose();

        var stem = size >= 96 ? ModelStem.ImageNet : ModelStem.Cifar;
        manual_seed(1);
        using var model = MultiBranchModels.Create("resnet18_dtskd", new MultiBranchModelOptions { ClassCount = data.ClassNames.Count, Stem = stem });
        using var loss = DualTeacherLoss.For(model, data.Train.Count, new DualTeacherLossOptions { ValidateInputs = false });
        using var sgd = optim.SGD(model.parameters(), 0.01, 0.9, 0, 5e-4, true);
        using var x = randn(batch, 3, size, size);
        using var y = randint(0, data.ClassNames.Count, [batch], ScalarType.Int64);
        using var idx = arange(batch, dtype: ScalarType.Int64);
        model.train();
        var modelTime = Timing.Measure("step", 2, 5, () =>
        {
            using var scope = NewDisposeScope();
            using var output = model.call(x);
            using var result = loss.Compute(output, y, idx, 0, 1);
            sgd.zero_grad();
            result.Total.backward();
            sgd.step();
        });

        var share = dataTime.MedianMs / (dataTime.MedianMs + modelTime.MedianMs);
        var augmentation = data.Preprocessing is ResizedCropFlip ? "resized crop + flip (stored 256)" : "pad-crop-flip";
        return string.Create(inv, $"| {size}x{size} | {augmentation} | {stem} | {batch} | {dataTime.MedianMs:F1} | {modelTime.MedianMs:F0} | {100 * share:F2}% |");
    }

    private static (List<long> Rss, int Batches, long Bytes, long Peak) Streaming(string folder, int size, int workers, string cache)
    {
        using var data = ImageFolder.Open(folder, new ImageFolderOptions
        {
            ImageSize = size, MemoryBudgetBytes = 64L << 20, CacheDirectory = cache, Workers = workers, HoldOutFraction = 0.1,
        });
        if (data.Mode != ImageFolderMode.Streaming)
        {
            throw new InvalidOperationException("The folder fits the 64 MB budget; give a larger one.");
        }

        using var reader = data.Train.OpenReader(CPU);
        var sampler = new BatchSampler(data.Train.Count, 64, seed: 1);
        var rss = new List<long>();
        ProcessMemory.ResetPeak();
        var batches = 0;
        for (var epoch = 0; epoch < 3; epoch++)
        {
            foreach (var batch in reader.Read(sampler, epoch))
            {
                using var owned = batch;
                using var scope = NewDisposeScope();
                _ = data.Preprocessing.Augment(batch.Images, 1, epoch, batch.Step);
                if (batches++ == 0)
                {
                    rss.Add(ProcessMemory.Read().Resident);
                }
            }

            GC.Collect();
            rss.Add(ProcessMemory.Read().Resident);
        }

        return (rss, batches, (long)(data.Train.Count + data.Test.Count) * data.Train.Shape.Bytes, ProcessMemory.Read().Peak);
    }
}
