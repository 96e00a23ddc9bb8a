using System.Globalization;
using System.Text;
using DTSKD.Core;
using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using static TorchSharp.torch;

namespace DTSKD.Benchmarks;

/// <summary>
/// Training throughput through the real Trainer path (gather, on-device augmentation, model, DualTeacherLoss, optimizer,
/// loss scaling) for each model, stem and precision mode, on synthetic images of a given size (CIFAR's 32 by default).
/// </summary>
public static class StepThroughput
{
    /// <summary>Measures every (model, stem, mode); with <paramref name="python"/>, PyTorch's modes beside them, the two sides alternating for <paramref name="rounds"/> rounds.</summary>
    public static int Run(Device device, string[] models, string[] modes, int batch, int steps, bool referenceWidth, int imageSize, string[] stems,
        string? python, string[] pytorchModes, int rounds, string? output, string command)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"Machine: {MachineInfo.Describe(device)}");
        var width = referenceWidth ? new MultiBranchModelOptions() : new MultiBranchModelOptions { BaseWidth = 16, NeckWidth = 128 };
        var ours = new Dictionary<string, List<double>>();
        var theirs = new Dictionary<string, List<double>>();
        string? pytorchVersion = null;
        for (var round = 0; round < Math.Max(1, rounds); round++)
        {
            foreach (var (name, mode, stemName) in models.SelectMany(m => stems.SelectMany(stem => modes.Select(mode => (m, mode, stem)))))
            {
                var ms = Measure(device, name, mode, stemName, batch, steps, width, imageSize);
                var key = $"| {name} | {stemName} | {imageSize} | {mode} |";
                (ours.TryGetValue(key, out var list) ? list : ours[key] = []).Add(ms);
                Console.WriteLine(string.Create(inv, $"round {round + 1}: DTSKD.Core {name} {stemName} {mode}: {ms:F1} ms/step"));
            }

            if (python is not null)
            {
                foreach (var (mode, ms, version) in PyTorch(python, pytorchModes, batch, steps, device))
                {
                    pytorchVersion = version;
                    (theirs.TryGetValue(mode, out var list) ? list : theirs[mode] = []).Add(ms);
                    Console.WriteLine(string.Create(inv, $"round {round + 1}: PyTorch {mode}: {ms:F1} ms/step"));
                }
            }
        }

        string Range(List<double> v) => v.Count == 1 ? v[0].ToString("F0", inv) : string.Create(inv, $"{v.Min():F0}-{v.Max():F0}");
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Measured on: {MachineInfo.Describe(device)}{(pytorchVersion is null ? "" : "; " + pytorchVersion)}.");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Command: `{command}`. Width {(referenceWidth ? "reference (64, neck 512; 1024 for shufflev2_dtskd)" : "16/128")}, 100 classes, batch {batch}, {steps} steps per epoch, second epoch measured; the whole training path (gather, augmentation, forward, DTSKD loss, backward, optimizer step). Modes: the precision, `-cl` = channels-last batches and convolution weights.{(rounds > 1 ? $" {rounds} rounds, the two sides alternating; a range is min-max over rounds." : "")}");
        text.AppendLine();
        text.AppendLine("| model | stem | image side | mode | ms per step |");
        text.AppendLine("| --- | --- | --- | --- | --- |");
        foreach (var (key, values) in ours)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"{key} {Range(values)} |");
        }

        if (theirs.Count > 0)
        {
            var fastest = theirs.MinBy(t => t.Value.Average());
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"PyTorch, the same model and DTSKD loss (`bench/pytorch/dtskd_step_bench.py`, random batches already in memory, no augmentation), {batch} per batch:");
            text.AppendLine();
            text.AppendLine("| PyTorch mode | ms per step | DTSKD.Core's fastest mode / this (mean over rounds) |");
            text.AppendLine("| --- | --- | --- |");
            var best = ours.Values.Min(v => v.Average());
            foreach (var (mode, values) in theirs)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"| {mode} | {Range(values)} | {best / values.Average():F2}x |");
            }

            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"PyTorch's fastest mode: {fastest.Key}.");
        }

        Console.Write(text);
        if (output is not null)
        {
            BenchOutput.Write(output, text.ToString());
        }

        return 0;
    }

    /// <summary>
    /// Milliseconds per step of the second epoch. With <paramref name="group"/>, this process is one rank of a data-parallel
    /// run: <paramref name="batch"/> per rank, each rank's shard of the same synthetic set, its batch norms synchronised with
    /// <paramref name="syncBatchNorm"/>; <paramref name="callback"/> sees the run.
    /// </summary>
    internal static double Measure(Device device, string name, string mode, string stemName, int batch, int steps, MultiBranchModelOptions width, int imageSize,
        IProcessGroup? group = null, TrainerCallback? callback = null, bool syncBatchNorm = false)
    {
        var stem = stemName switch
        {
            "cifar" => ModelStem.Cifar,
            "imagenet" => ModelStem.ImageNet,
            _ => throw new ArgumentException($"Unknown stem '{stemName}': use cifar or imagenet.", nameof(stemName)),
        };
        var channelsLast = mode.EndsWith("-cl", StringComparison.Ordinal);
        var (precision, tf32) = mode.Replace("-cl", "", StringComparison.Ordinal) switch
        {
            "fp32" => (TrainingPrecision.Float32, false),
            "tf32" => (TrainingPrecision.Float32, true),
            "bf16" => (TrainingPrecision.BFloat16, true),
            "fp16" => (TrainingPrecision.Float16, true),
            _ => throw new ArgumentException($"Unknown mode '{mode}': use fp32, tf32, bf16 or fp16, each optionally with -cl (channels-last).", nameof(mode)),
        };

        manual_seed(1);
        var n = batch * steps * (group?.WorldSize ?? 1);
        using var images = randint(0, 256, [n, 3, imageSize, imageSize], ScalarType.Byte).DetachFromDisposeScope();
        using var labels = randint(0, 100, [n], ScalarType.Int64).DetachFromDisposeScope();
        using var train = ImageDataset.FromTensors(images, labels, 100, "synthetic-cifar");
        using var test = train.Take(batch);
        using var model = MultiBranchModels.Create(name, new MultiBranchModelOptions { BaseWidth = width.BaseWidth, NeckWidth = width.NeckWidth, Stem = stem });
        using var loss = DualTeacherLoss.For(model, n, new DualTeacherLossOptions { ValidateInputs = false }, device);
        using var trainer = new Trainer(model, loss, train, test, PadCropFlip.Cifar, new TrainerOptions
        {
            Epochs = 2, BatchSize = batch, Device = device, Precision = precision, AllowTf32 = tf32, ChannelsLast = channelsLast, Milestones = [], LogInterval = 1_000_000,
            ProcessGroup = group, SyncBatchNorm = syncBatchNorm,
        });
        if (callback is not null)
        {
            trainer.Callbacks.Add(callback);
        }

        // Epoch 1 warms up (allocator, cuDNN algorithm choice, oneDNN primitive caches); epoch 2 is measured.
        var result = trainer.Run();
        return 1000.0 * result.Metrics[1].TrainSeconds / steps;
    }

    private static List<(string Mode, double Ms, string Version)> PyTorch(string python, string[] modes, int batch, int steps, Device device)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "pytorch", "dtskd_step_bench.py");
        if (!File.Exists(script))
        {
            script = Path.GetFullPath(Path.Combine("bench", "pytorch", "dtskd_step_bench.py"));
        }

        var info = new System.Diagnostics.ProcessStartInfo(python,
            [script, "--device", device.type == TorchSharp.DeviceType.CUDA ? "cuda" : "cpu", "--modes", string.Join(",", modes),
             "--steps", steps.ToString(CultureInfo.InvariantCulture), "--batch-size", batch.ToString(CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
        };
        using var process = System.Diagnostics.Process.Start(info)!;
        var lines = process.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{python} {script} failed with exit code {process.ExitCode}.");
        }

        var version = lines.FirstOrDefault(l => l.StartsWith("PyTorch", StringComparison.Ordinal)) ?? "PyTorch";
        return [.. lines.Where(l => l.StartsWith("| pytorch ", StringComparison.Ordinal)).Select(l =>
        {
            var cells = l.Split('|', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            return (cells[0]["pytorch ".Length..], double.Parse(cells[2], CultureInfo.InvariantCulture), version);
        })];
    }
}
