using System.Diagnostics;
using System.Globalization;
using System.Text;
using DTSKD.Core;
using DTSKD.Core.Data;
using DTSKD.Core.Interop;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using static TorchSharp.torch;

namespace DTSKD.Benchmarks;

/// <summary>
/// The fine-tuning step at ImageNet's size, DTSKD.Core against PyTorch's torchvision <c>resnet18</c>
/// (<c>bench/pytorch/finetune_step_bench.py</c>), the two sides alternating in one run. Ours loads the very file the
/// PyTorch side writes through <see cref="TorchvisionResNet.Load"/>, with the fine-tuning recipe (pretrained layers at a
/// tenth of the rate, new heads at the full rate) and the ImageNet augmentation (<see cref="ResizedCropFlip"/> from
/// 256-pixel stored images), and times the whole Trainer step; PyTorch's batches are already in memory and not augmented.
/// </summary>
public static class FineTuneThroughput
{
    private const int Classes = 10;

    /// <summary>Measures every (objective, mode) of ours and every PyTorch mode for <paramref name="rounds"/> alternating rounds; returns the exit code.</summary>
    public static int Run(string python, string[] objectives, string[] modes, string[] pytorchModes, int batch, int steps, int imageSize, int rounds, string? output, string command)
    {
        var inv = CultureInfo.InvariantCulture;
        var bad = objectives.FirstOrDefault(o => o is not ("ce" or "dtskd"));
        if (bad is not null)
        {
            Console.Error.WriteLine($"error: --objectives '{bad}' is not known; use ce (cross-entropy on the backbone head, what the PyTorch side runs) or dtskd (the recipe).");
            return 2;
        }

        var dir = Directory.CreateTempSubdirectory("dtskd-finetune-steps-");
        try
        {
            var weights = Path.Combine(dir.FullName, "resnet18.pth");
            var (saved, savedOutput) = Python(python, ["--save-weights", weights]);
            if (saved != 0 || !File.Exists(weights))
            {
                Console.Error.WriteLine($"error: --pytorch '{python}' could not write torchvision's resnet18 (exit {saved}): {savedOutput.Trim().Split('\n').LastOrDefault()}");
                return 2;
            }

            Console.WriteLine($"Machine: {MachineInfo.Describe(CPU)}");
            var ours = new Dictionary<string, List<double>>();
            var theirs = new Dictionary<string, List<double>>();
            var version = "PyTorch";
            for (var round = 0; round < Math.Max(1, rounds); round++)
            {
                foreach (var (objective, mode) in objectives.SelectMany(o => modes.Select(m => (o, m))))
                {
                    var ms = Measure(weights, objective, mode, batch, steps, imageSize);
                    Add(ours, $"| DTSKD.Core | {objective} | {mode} |", ms);
                    Console.WriteLine(string.Create(inv, $"round {round + 1}: DTSKD.Core {objective} {mode}: {ms:F0} ms/step"));
                }

                var (code, text) = Python(python, ["--modes", string.Join(',', pytorchModes), "--steps", $"{steps}", "--batch-size", $"{batch}", "--image-size", $"{imageSize}", "--classes", $"{Classes}"]);
                if (code != 0)
                {
                    Console.Error.WriteLine($"error: bench/pytorch/finetune_step_bench.py failed (exit {code}): {text.Trim().Split('\n').LastOrDefault()}");
                    return 1;
                }

                foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    if (line.StartsWith("PyTorch", StringComparison.Ordinal))
                    {
                        version = line;
                    }
                    else if (line.StartsWith("| pytorch ", StringComparison.Ordinal))
                    {
                        var cells = line.Split('|', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                        var ms = double.Parse(cells[2], inv);
                        Add(theirs, cells[0]["pytorch ".Length..], ms);
                        Console.WriteLine(string.Create(inv, $"round {round + 1}: PyTorch {cells[0]["pytorch ".Length..]}: {ms:F0} ms/step"));
                    }
                }
            }

            var report = Report(ours, theirs, version, batch, steps, imageSize, rounds, command);
            Console.Write(report);
            if (output is not null)
            {
                BenchOutput.Write(output, report);
            }

            return 0;
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static void Add(Dictionary<string, List<double>> table, string key, double value) =>
        (table.TryGetValue(key, out var list) ? list : table[key] = []).Add(value);

    private static string Report(Dictionary<string, List<double>> ours, Dictionary<string, List<double>> theirs, string version, int batch, int steps, int imageSize, int rounds, string command)
    {
        var inv = CultureInfo.InvariantCulture;
        string Range(List<double> v) => v.Count == 1 ? v[0].ToString("F0", inv) : string.Create(inv, $"{v.Min():F0}-{v.Max():F0}");
        var fastest = theirs.Count == 0 ? (Mode: "", Ms: double.NaN) : theirs.Select(t => (Mode: t.Key, Ms: t.Value.Average())).MinBy(t => t.Ms);
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Measured on: {MachineInfo.Describe(CPU)}; {version}.");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Command: `{command}`. torchvision resnet18 ({Classes} classes), {imageSize}-pixel images, batch {batch}, {steps} steps per epoch, the second of two epochs timed; {rounds} round(s), the two sides alternating; a range is min-max over rounds. DTSKD.Core: `TorchvisionResNet.Load` of the file PyTorch wrote, `FineTuning.For` (pretrained layers at 0.1 of the rate), the whole Trainer step (gather, random resized crop and flip from 256-pixel images, forward, objective, backward, optimizer); `ce` trains the backbone head alone (branches and neck run but take no loss), `dtskd` is the recipe's loss on every head. PyTorch: cross-entropy on its one head, batches already in memory, no augmentation.");
        text.AppendLine();
        text.AppendLine("| side | objective | mode | ms per step | / PyTorch's fastest (mean over rounds) |");
        text.AppendLine("| --- | --- | --- | --- | --- |");
        foreach (var (key, values) in ours)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"{key} {Range(values)} | {values.Average() / fastest.Ms:F2}x |");
        }

        foreach (var (mode, values) in theirs)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| PyTorch | ce | {mode} | {Range(values)} | {values.Average() / fastest.Ms:F2}x |");
        }

        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"PyTorch's fastest mode: {fastest.Mode}. A ratio below 1.00x is a step faster than it.");
        return text.ToString();
    }

    private static double Measure(string weights, string objectiveName, string mode, int batch, int steps, int imageSize)
    {
        var channelsLast = mode.EndsWith("-cl", StringComparison.Ordinal);
        var precision = mode.Replace("-cl", "", StringComparison.Ordinal) switch
        {
            "fp32" => TrainingPrecision.Float32,
            "bf16" => TrainingPrecision.BFloat16,
            _ => throw new ArgumentException($"Unknown mode '{mode}': use fp32 or bf16, each optionally with -cl (channels-last).", nameof(mode)),
        };

        manual_seed(1);
        var n = batch * steps;
        var stored = (int)Math.Round(imageSize / 0.875);
        using var images = randint(0, 256, [n, 3, stored, stored], ScalarType.Byte).DetachFromDisposeScope();
        using var labels = randint(0, Classes, [n], ScalarType.Int64).DetachFromDisposeScope();
        using var train = ImageDataset.FromTensors(images, labels, Classes, "synthetic-imagenet");
        using var test = train.Take(batch);
        var network = TorchvisionResNet.Load(weights, new MultiBranchModelOptions { ClassCount = Classes });
        using var model = network.Model;
        using var dtskd = objectiveName == "dtskd" ? DualTeacherLoss.For(model, n, new DualTeacherLossOptions { ValidateInputs = false }, CPU) : null;
        IMultiBranchObjective objective = dtskd is not null ? dtskd : CrossEntropyObjective.BackboneOnly(model);
        var options = TrainerOptions.FineTuningRecipe(2);
        options.BatchSize = batch;
        options.Device = CPU;
        options.Precision = precision;
        options.ChannelsLast = channelsLast;
        options.Milestones = [];
        options.LogInterval = 1_000_000;
        options.FineTuning = FineTuning.For(network);
        using var trainer = new Trainer(model, objective, train, test, new ResizedCropFlip(imageSize, network.Mean, network.Std), options);

        // Epoch 1 warms up (allocator, oneDNN primitive caches); epoch 2 is measured.
        var result = trainer.Run();
        return 1000.0 * result.Metrics[1].TrainSeconds / steps;
    }

    private static (int Code, string Output) Python(string python, IEnumerable<string> args)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "pytorch", "finetune_step_bench.py");
        if (!File.Exists(script))
        {
            script = Path.GetFullPath(Path.Combine("bench", "pytorch", "finetune_step_bench.py"));
        }

        try
        {
            var info = new ProcessStartInfo(python, [script, .. args]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var process = Process.Start(info)!;
            var errors = process.StandardError.ReadToEndAsync();
            var text = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, text + errors.Result);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return (127, ex.Message);
        }
    }
}
