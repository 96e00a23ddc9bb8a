using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using DTSKD.Core;
using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using static TorchSharp.torch;

namespace DTSKD.Benchmarks;

/// <summary>
/// What each teacher buys: the same model, data and budget trained with several objectives, several seeds each.
/// Runs the Fashion-MNIST studies on a CPU and, unchanged, the CIFAR-100 recipe when given the data and a GPU.
/// </summary>
/// <remarks>
/// A row is a base objective, optionally with overrides of the DTSKD options in brackets, for example
/// <c>dtskd[t2=off]</c> or <c>dtskd[detach;warmup=10;t=2]</c> (see <see cref="AblationRow"/>).
/// </remarks>
public static class AblationStudy
{
    public static Command Command(Option<string> deviceOption, Func<string, Device> resolve, string[] args)
    {
        var dataType = new Option<string>("--data-type") { Description = "fashion-mnist, cifar100 or cifar10.", DefaultValueFactory = _ => StandardDatasets.FashionMnist };
        dataType.AcceptOnlyFromAmong([.. StandardDatasets.Names]);
        var dataPath = new Option<string?>("--data-path") { Description = "Data folder (default: /usr/share/datasets/fashion-mnist, or ./data for CIFAR)." };
        var epochs = new Option<int>("--epochs") { Description = "Epochs per run (lr x0.1 at 1/2 and 3/4; best counted from 2/3 on).", DefaultValueFactory = _ => 10 };
        var trainLimit = new Option<int?>("--train-limit") { Description = "Use the first N training images." };
        var testLimit = new Option<int?>("--test-limit") { Description = "Use the first N test images." };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 128, Description = "Batch size." };
        var lr = new Option<double>("--lr") { DefaultValueFactory = _ => 0.1, Description = "Initial learning rate." };
        var model = new Option<string>("--model") { DefaultValueFactory = _ => "resnet18_dtskd", Description = "Model: " + string.Join(", ", MultiBranchModels.Names) + "." };
        model.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string>() is { } name && !MultiBranchModels.IsKnown(name))
            {
                r.AddError($"Unknown --model '{name}'. Known models: {string.Join(", ", MultiBranchModels.Names)}.");
            }
        });
        var baseWidth = new Option<int>("--base-width") { DefaultValueFactory = _ => 16, Description = "Base width (64 = reference)." };
        var neckWidth = new Option<int>("--neck-width") { DefaultValueFactory = _ => 128, Description = "Neck width (512 = reference)." };
        var precision = new Option<string>("--precision") { DefaultValueFactory = _ => "fp32", Description = "fp32 or bf16 (bfloat16 passes, float32 masters)." };
        precision.AcceptOnlyFromAmong("fp32", "bf16");
        var seeds = new Option<string>("--seeds") { DefaultValueFactory = _ => "1,2", Description = "Comma-separated seeds; every row runs with each." };
        var rows = new Option<string>("--rows")
        {
            DefaultValueFactory = _ => string.Join(",", AblationRow.Keys),
            Description = "Comma-separated rows: " + string.Join(", ", AblationRow.Keys) + "; a DTSKD row takes overrides in brackets, e.g. dtskd[t2=off;warmup=10] (" + AblationRow.OverrideHelp + ").",
        };
        var title = new Option<string>("--title") { DefaultValueFactory = _ => "What each teacher buys", Description = "The report's title." };
        var output = new Option<string>("--output") { DefaultValueFactory = _ => "docs/results/ablation.md", Description = "The report (Markdown); its figure and CSV go next to it, in <name>/." };
        var command = new Command("ablation", "Trains every row of the ablation with the same budget and writes the table, plot and CSV.")
        {
            deviceOption, dataType, dataPath, epochs, trainLimit, testLimit, batch, lr, model, baseWidth, neckWidth, precision, seeds, rows, title, output,
        };
        command.SetAction(r =>
        {
            List<AblationRow> parsed;
            long[] seedList;
            try
            {
                parsed = AblationRow.ParseList(r.GetValue(rows)!);
                seedList = [.. r.GetValue(seeds)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => long.Parse(s, CultureInfo.InvariantCulture))];
            }
            catch (Exception ex) when (ex is ArgumentException or FormatException)
            {
                Console.Error.WriteLine($"error: {ex.Message}");
                return 2;
            }

            return Run(new Settings(
                resolve(r.GetValue(deviceOption)!), r.GetValue(dataType)!, r.GetValue(dataPath), r.GetValue(epochs), r.GetValue(trainLimit), r.GetValue(testLimit),
                r.GetValue(batch), r.GetValue(lr), r.GetValue(model)!, r.GetValue(baseWidth), r.GetValue(neckWidth),
                r.GetValue(precision) == "bf16" ? TrainingPrecision.BFloat16 : TrainingPrecision.Float32,
                seedList, parsed, r.GetValue(title)!, r.GetValue(output)!, "dotnet run -c Release --project bench/DTSKD.Benchmarks -- " + string.Join(' ', args.Select(Quote))));
        });
        return command;
    }

    private static string Quote(string arg) => arg.IndexOfAny(['[', ';', ' ', ':']) >= 0 ? $"\"{arg}\"" : arg;

    private sealed record Settings(
        Device Device, string DataType, string? DataPath, int Epochs, int? TrainLimit, int? TestLimit, int BatchSize, double Lr,
        string Model, int BaseWidth, int NeckWidth, TrainingPrecision Precision, long[] Seeds, List<AblationRow> Rows, string Title, string Output, string CommandLine);

    private sealed record RunResult(AblationRow Row, long Seed, IReadOnlyList<EpochMetrics> Metrics, double? BestBackbone, double Seconds);

    private static int Run(Settings s)
    {
        using var data = StandardDatasets.LoadAsync(s.DataType, s.DataPath, s.TrainLimit, s.TestLimit).GetAwaiter().GetResult();
        var (train, test) = (data.Train, data.Test);
        var bestAfter = s.Epochs * 2 / 3;
        int[] milestones = [s.Epochs / 2, s.Epochs * 3 / 4];
        Console.WriteLine($"{train.Name}: {train.Count} train / {test.Count} test; {s.Model} {s.BaseWidth}/{s.NeckWidth}; {s.Epochs} epochs, lr {s.Lr} x0.1 at {string.Join(",", milestones)}; best from epoch {bestAfter + 1}; {s.Precision} on {s.Device.type}");
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var wall = Stopwatch.StartNew();
        var results = new List<RunResult>();
        foreach (var row in s.Rows)
        {
            foreach (var seed in s.Seeds)
            {
                manual_seed(seed);
                using var model = MultiBranchModels.Create(s.Model, new MultiBranchModelOptions
                {
                    ClassCount = train.ClassCount, InputChannels = train.Shape.Channels, BaseWidth = s.BaseWidth, NeckWidth = s.NeckWidth,
                });
                var objective = row.Build(model, train.Count, s.Device);
                using var owned = objective as IDisposable;
                using var trainer = new Trainer(model, objective, train, test, data.Preprocessing, new TrainerOptions
                {
                    Epochs = s.Epochs, BatchSize = s.BatchSize, LearningRate = s.Lr, Milestones = milestones, BestAfterEpoch = bestAfter,
                    Seed = seed, Device = s.Device, Precision = s.Precision, LogInterval = 1_000_000,
                });
                var clock = Stopwatch.StartNew();
                var result = trainer.Run();
                results.Add(new RunResult(row, seed, result.Metrics, result.BestTop1, clock.Elapsed.TotalSeconds));
                var last = result.Metrics[^1];
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{row.Key,-24} seed {seed}: best {result.BestTop1:F2}  final {string.Join(" / ", last.TestTop1.Select(t => t.ToString("F2", CultureInfo.InvariantCulture)))}  train {last.TrainTop1:F2}  ({clock.Elapsed.TotalSeconds:F0} s)"));
            }
        }

        var cpuTime = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        Write(s, results, train, test, bestAfter, milestones, cpuTime, wall.Elapsed);
        return 0;
    }

    private static string MeanSpread(IEnumerable<double> values)
    {
        var v = values.ToArray();
        var mean = v.Average();
        if (v.Length == 1)
        {
            return v[0].ToString("F2", CultureInfo.InvariantCulture);
        }

        var spread = Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1));
        return string.Create(CultureInfo.InvariantCulture, $"{mean:F2} ± {spread:F2}");
    }

    private static void Write(Settings s, List<RunResult> results, IImageSource train, IImageSource test, int bestAfter, int[] milestones, TimeSpan cpu, TimeSpan wall)
    {
        var inv = CultureInfo.InvariantCulture;
        var output = Path.GetFullPath(s.Output);
        var assets = Path.Combine(Path.GetDirectoryName(output)!, Path.GetFileNameWithoutExtension(output));
        Directory.CreateDirectory(assets);
        var assetsName = Path.GetFileName(assets);
        var heads = results[0].Metrics[0].TestTop1.Count;

        // Every epoch of every run, for anyone who wants to plot it differently.
        var csv = new StringBuilder("row,seed,epoch,lr,train_loss,train_top1," + string.Join(",", Enumerable.Range(0, heads).Select(h => h == 0 ? "test_top1_backbone" : $"test_top1_branch{h}")) + ",test_top5_backbone,seconds\n");
        foreach (var r in results)
        {
            foreach (var m in r.Metrics)
            {
                csv.AppendLine(string.Create(inv, $"\"{r.Row.Key}\",{r.Seed},{m.Epoch + 1},{m.LearningRate},{m.TrainLoss:R},{m.TrainTop1:R},{string.Join(",", m.TestTop1.Select(t => t.ToString("R", inv)))},{m.TestTop5:R},{m.TrainSeconds:F1}"));
            }
        }

        WriteAtomically(Path.Combine(assets, "ablation.csv"), csv.ToString());

#if !NO_PLOTS
        var plot = new ScottPlot.Plot();
        double[] epochs = [.. Enumerable.Range(1, s.Epochs).Select(e => (double)e)];
        foreach (var row in s.Rows)
        {
            var runs = results.Where(r => r.Row == row).ToList();
            double[] mean = [.. Enumerable.Range(0, s.Epochs).Select(e => runs.Average(r => r.Metrics[e].BackboneTop1))];
            var line = plot.Add.Scatter(epochs, mean);
            line.LegendText = row.Key;
        }

        plot.Title($"Backbone test top-1 (mean of {s.Seeds.Length} seeds)");
        plot.XLabel("epoch");
        plot.YLabel("top-1 (%)");
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        plot.ShowLegend(ScottPlot.Edge.Right);
        plot.SavePng(Path.Combine(assets, "ablation-backbone.png"), 1000, 550);
#endif

        var spreadNote = s.Seeds.Length > 1 ? "Mean ± standard deviation over seeds." : "One seed per row: no spread is known.";
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"# {s.Title}");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"`{s.Model}` at width {s.BaseWidth}/{s.NeckWidth} on {train.Name} ({train.Count} training, {test.Count} test images, {train.Shape.Channels} x {train.Shape.Height} x {train.Shape.Width}), " +
            $"{s.Epochs} epochs per run, batch {s.BatchSize}, {s.Precision}, SGD lr {s.Lr.ToString(inv)} (Nesterov 0.9, weight decay 5e-4) x0.1 at epochs {milestones[0] + 1} and {milestones[1] + 1}, " +
            $"crop (padding 4) + flip; the same budget, seeds ({string.Join(", ", s.Seeds)}) and initialisations for every row. " +
            $"Best = best backbone test top-1 over epochs {bestAfter + 1}-{s.Epochs} (the recipe's \"last third\"); final = last epoch; train = the last epoch's backbone top-1 on the augmented training batches. {spreadNote}");
        text.AppendLine();
        text.Append("| row | objective | backbone best | backbone final | train (final) |");
        text.AppendLine(string.Concat(Enumerable.Range(1, heads - 1).Select(h => $" branch {h} final |")));
        text.AppendLine("| --- | --- | --- | --- | --- |" + string.Concat(Enumerable.Repeat(" --- |", heads - 1)));
        foreach (var row in s.Rows)
        {
            var runs = results.Where(r => r.Row == row).ToList();
            var finals = Enumerable.Range(0, heads).Select(h => MeanSpread(runs.Select(r => r.Metrics[^1].TestTop1[h]))).ToList();
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| `{row.Key}` | {row.Description} | {MeanSpread(runs.Select(r => r.BestBackbone ?? double.NaN))} | {finals[0]} | {MeanSpread(runs.Select(r => r.Metrics[^1].TrainTop1))} |{string.Concat(finals.Skip(1).Select(f => $" {f} |"))}");
        }

        text.AppendLine();
#if !NO_PLOTS
        text.AppendLine(CultureInfo.InvariantCulture, $"![Backbone test top-1 per epoch]({assetsName}/ablation-backbone.png)");
        text.AppendLine();
#endif
        text.AppendLine(CultureInfo.InvariantCulture, $"Every epoch of every run: [{assetsName}/ablation.csv]({assetsName}/ablation.csv).");
        text.AppendLine();
        text.AppendLine("## How it was made");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"    {s.CommandLine}");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"on {MachineInfo.Describe(s.Device)}: {results.Count} runs, {wall.TotalMinutes:F1} minutes wall time ({results.Average(r => r.Seconds):F0} s a run), {cpu.TotalMinutes:F1} minutes of CPU time ({DateTime.UtcNow:yyyy-MM-dd}).");
        WriteAtomically(output, text.ToString());
        Console.WriteLine($"Wrote {output} and {assets}/");
    }

    private static void WriteAtomically(string path, string text)
    {
        File.WriteAllText(path + ".tmp", text);
        File.Move(path + ".tmp", path, overwrite: true);
    }
}
