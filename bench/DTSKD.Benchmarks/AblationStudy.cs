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
/// What each teacher buys: the same model, data and budget trained with six objectives, several seeds each.
/// Runs the Fashion-MNIST study on a CPU and, unchanged, the CIFAR-100 recipe when given the data and a GPU.
/// </summary>
public static class AblationStudy
{
    /// <summary>The rows: a name and the objective for a model with k branches and a training set of n samples.</summary>
    private static readonly (string Key, string Name, string Description, Func<int, int, int, Device, (IMultiBranchObjective Objective, IDisposable? Owned)> Build)[] Rows =
    [
        ("ce", "CE, backbone only", "cross-entropy on the backbone head; branches untrained", (k, n, c, d) => (CrossEntropyObjective.BackboneOnly(k), null)),
        ("ce-all", "CE, all heads", "cross-entropy on every head, weight 1 each", (k, n, c, d) => (CrossEntropyObjective.AllHeads(k), null)),
        ("structural", "structural teacher only", "the reference's --HSKD 0: 0.2 CE(backbone) + 0.8 sum KD(branch, backbone)", (k, n, c, d) =>
            (new DualTeacherLoss(new DualTeacherLossOptions { UseHistoricalTeacher = false }, null), null)),
        ("historical", "historical teacher only", "soft targets on every head (weights 3/1/1/1, x0.2), no KD", (k, n, c, d) => Dtskd(k, n, c, d, o => o.KdWeight = 0)),
        ("dtskd", "both teachers (DTSKD)", "the recipe: historical on every head + structural KD", (k, n, c, d) => Dtskd(k, n, c, d, _ => { })),
        ("pskd", "PS-KD style", "historical teacher on the backbone only (branch weights 0, no KD)", (k, n, c, d) => Dtskd(k, n, c, d, o => { o.BranchWeights = [0, 0, 0]; o.KdWeight = 0; })),
        ("structural-detached", "structural only, backbone detached", "as 'structural teacher only', with the backbone a fixed target in the KD terms", (k, n, c, d) =>
            (new DualTeacherLoss(new DualTeacherLossOptions { UseHistoricalTeacher = false, DetachBackbone = true }, null), null)),
        ("dtskd-detached", "DTSKD, backbone detached", "the recipe, with the backbone a fixed target in the KD terms", (k, n, c, d) => Dtskd(k, n, c, d, o => o.DetachBackbone = true)),
    ];

    private static (IMultiBranchObjective, IDisposable?) Dtskd(int k, int n, int c, Device device, Action<DualTeacherLossOptions> configure)
    {
        var options = new DualTeacherLossOptions();
        configure(options);
        var history = new HistoricalTeacher(n, c, k + 1, device);
        return (new DualTeacherLoss(options, history), history);
    }

    public static Command Command(Option<string> deviceOption, Func<string, Device> resolve, string[] args)
    {
        var dataType = new Option<string>("--data-type") { Description = "fashion-mnist, cifar100 or cifar10.", DefaultValueFactory = _ => "fashion-mnist" };
        dataType.AcceptOnlyFromAmong("fashion-mnist", "cifar100", "cifar10");
        var dataPath = new Option<string?>("--data-path") { Description = "Data folder (default: /usr/share/datasets/fashion-mnist, or ./data for CIFAR)." };
        var epochs = new Option<int>("--epochs") { Description = "Epochs per run (lr x0.1 at 1/2 and 3/4; best counted from 2/3 on).", DefaultValueFactory = _ => 10 };
        var trainLimit = new Option<int?>("--train-limit") { Description = "Use the first N training images." };
        var testLimit = new Option<int?>("--test-limit") { Description = "Use the first N test images." };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => 128, Description = "Batch size." };
        var lr = new Option<double>("--lr") { DefaultValueFactory = _ => 0.1, Description = "Initial learning rate." };
        var baseWidth = new Option<int>("--base-width") { DefaultValueFactory = _ => 16, Description = "ResNet base width (64 = reference)." };
        var neckWidth = new Option<int>("--neck-width") { DefaultValueFactory = _ => 128, Description = "Neck width (512 = reference)." };
        var seeds = new Option<string>("--seeds") { DefaultValueFactory = _ => "1,2", Description = "Comma-separated seeds; every row runs with each." };
        var rows = new Option<string>("--rows") { DefaultValueFactory = _ => string.Join(",", Rows.Select(r => r.Key)), Description = "Comma-separated rows: " + string.Join(", ", Rows.Select(r => r.Key)) + "." };
        var output = new Option<string>("--output") { DefaultValueFactory = _ => "docs/results.md", Description = "The report (Markdown); its figures and CSV go next to it, in <name>/." };
        var command = new Command("ablation", "Trains every row of the ablation with the same budget and writes the table, plots and CSV.")
        {
            deviceOption, dataType, dataPath, epochs, trainLimit, testLimit, batch, lr, baseWidth, neckWidth, seeds, rows, output,
        };
        command.SetAction(r => Run(new Settings(
            resolve(r.GetValue(deviceOption)!), r.GetValue(dataType)!, r.GetValue(dataPath), r.GetValue(epochs), r.GetValue(trainLimit), r.GetValue(testLimit),
            r.GetValue(batch), r.GetValue(lr), r.GetValue(baseWidth), r.GetValue(neckWidth),
            [.. r.GetValue(seeds)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(long.Parse)],
            [.. r.GetValue(rows)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)],
            r.GetValue(output)!, "dotnet run -c Release --project bench/DTSKD.Benchmarks -- " + string.Join(' ', args))));
        return command;
    }

    private sealed record Settings(
        Device Device, string DataType, string? DataPath, int Epochs, int? TrainLimit, int? TestLimit, int BatchSize, double Lr,
        int BaseWidth, int NeckWidth, long[] Seeds, string[] Rows, string Output, string CommandLine);

    private sealed record RunResult(string Row, long Seed, IReadOnlyList<EpochMetrics> Metrics, double? BestBackbone, double Seconds);

    private static int Run(Settings s)
    {
        var unknown = s.Rows.Where(r => Rows.All(x => x.Key != r)).ToList();
        if (unknown.Count > 0)
        {
            Console.Error.WriteLine($"error: unknown rows {string.Join(", ", unknown)}; known: {string.Join(", ", Rows.Select(r => r.Key))}.");
            return 2;
        }

        var (train, test, preprocessing) = Load(s);
        using var _ = train;
        using var __ = test;
        var bestAfter = (int)Math.Ceiling(s.Epochs * 2.0 / 3);
        int[] milestones = [s.Epochs / 2, s.Epochs * 3 / 4];
        Console.WriteLine($"{train.Name}: {train.Count} train / {test.Count} test; {s.Epochs} epochs, lr {s.Lr} x0.1 at {string.Join(",", milestones)}; best from epoch {bestAfter + 1}; device {s.Device.type}");
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var wall = Stopwatch.StartNew();
        var results = new List<RunResult>();
        foreach (var key in s.Rows)
        {
            var row = Rows.Single(r => r.Key == key);
            foreach (var seed in s.Seeds)
            {
                manual_seed(seed);
                using var model = ResNetDtskd.ResNet18(new MultiBranchModelOptions
                {
                    ClassCount = train.ClassCount, InputChannels = train.Channels, BaseWidth = s.BaseWidth, NeckWidth = s.NeckWidth,
                });
                var (objective, owned) = row.Build(model.BranchCount, train.Count, train.ClassCount, s.Device);
                using var ownedState = owned;
                using var trainer = new Trainer(model, objective, train, test, preprocessing, new TrainerOptions
                {
                    Epochs = s.Epochs, BatchSize = s.BatchSize, LearningRate = s.Lr, Milestones = milestones, BestAfterEpoch = bestAfter,
                    Seed = seed, Device = s.Device, LogInterval = 1_000_000,
                });
                var clock = Stopwatch.StartNew();
                var result = trainer.Run();
                results.Add(new RunResult(key, seed, result.Metrics, result.BestTop1, clock.Elapsed.TotalSeconds));
                var last = result.Metrics[^1];
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{key,-11} seed {seed}: best {result.BestTop1:F2}  final {string.Join(" / ", last.TestTop1.Select(t => t.ToString("F2", CultureInfo.InvariantCulture)))}  ({clock.Elapsed.TotalSeconds:F0} s)"));
            }
        }

        var cpuTime = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        Write(s, results, train, test, bestAfter, milestones, cpuTime, wall.Elapsed);
        return 0;
    }

    private static (ImageDataset Train, ImageDataset Test, BatchAugmentation Preprocessing) Load(Settings s)
    {
        ImageDataset train, test;
        BatchAugmentation preprocessing;
        switch (s.DataType)
        {
            case "cifar100":
                var folder = Cifar100Download.EnsureAsync(s.DataPath ?? "data").GetAwaiter().GetResult();
                (train, test, preprocessing) = (CifarReader.LoadCifar100(folder, true), CifarReader.LoadCifar100(folder, false), BatchAugmentation.Cifar);
                break;
            case "cifar10":
                var cifar10 = Path.Combine(s.DataPath ?? "data", "cifar-10-batches-bin");
                (train, test, preprocessing) = (CifarReader.LoadCifar10(cifar10, true), CifarReader.LoadCifar10(cifar10, false), BatchAugmentation.Cifar);
                break;
            default:
                var path = s.DataPath ?? "/usr/share/datasets/fashion-mnist";
                (train, test, preprocessing) = (IdxReader.LoadFashionMnist(path, true), IdxReader.LoadFashionMnist(path, false), BatchAugmentation.FashionMnist);
                break;
        }

        return (Limit(train, s.TrainLimit), Limit(test, s.TestLimit), preprocessing);
    }

    private static ImageDataset Limit(ImageDataset data, int? limit)
    {
        if (limit is not { } n || n >= data.Count)
        {
            return data;
        }

        using (data)
        {
            return data.Take(n);
        }
    }

    private static string MeanSpread(IEnumerable<double> values)
    {
        var v = values.ToArray();
        var mean = v.Average();
        var spread = v.Length > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1)) : 0;
        return string.Create(CultureInfo.InvariantCulture, $"{mean:F2} ± {spread:F2}");
    }

    private static void Write(Settings s, List<RunResult> results, ImageDataset train, ImageDataset test, int bestAfter, int[] milestones, TimeSpan cpu, TimeSpan wall)
    {
        var inv = CultureInfo.InvariantCulture;
        var output = Path.GetFullPath(s.Output);
        var assets = Path.Combine(Path.GetDirectoryName(output)!, Path.GetFileNameWithoutExtension(output));
        Directory.CreateDirectory(assets);
        var assetsName = Path.GetFileName(assets);

        // Every epoch of every run, for anyone who wants to plot it differently.
        var csv = new StringBuilder("row,seed,epoch,lr,alpha,train_loss,train_top1,test_top1_backbone,test_top1_branch1,test_top1_branch2,test_top1_branch3,test_top5_backbone\n");
        foreach (var r in results)
        {
            foreach (var m in r.Metrics)
            {
                csv.AppendLine(string.Create(inv, $"{r.Row},{r.Seed},{m.Epoch + 1},{m.LearningRate},{m.Alpha?.ToString(inv) ?? ""},{m.TrainLoss:R},{m.TrainTop1:R},{string.Join(",", m.TestTop1.Select(t => t.ToString("R", inv)))},{m.TestTop5:R}"));
            }
        }

        File.WriteAllText(Path.Combine(assets, "ablation.csv"), csv.ToString());

#if !NO_PLOTS
        var plot = new ScottPlot.Plot();
        double[] epochs = [.. Enumerable.Range(1, s.Epochs).Select(e => (double)e)];
        foreach (var key in s.Rows)
        {
            var runs = results.Where(r => r.Row == key).ToList();
            double[] mean = [.. Enumerable.Range(0, s.Epochs).Select(e => runs.Average(r => r.Metrics[e].BackboneTop1))];
            var line = plot.Add.Scatter(epochs, mean);
            line.LegendText = Rows.Single(r => r.Key == key).Name;
        }

        plot.Title($"Backbone test top-1 (mean of {s.Seeds.Length} seeds)");
        plot.XLabel("epoch");
        plot.YLabel("top-1 (%)");
        plot.ShowLegend(ScottPlot.Alignment.LowerRight);
        plot.SavePng(Path.Combine(assets, "ablation-backbone.png"), 900, 550);
#endif

        var text = new StringBuilder();
        text.AppendLine("# Results: what each teacher buys");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"`resnet18_dtskd` at width {s.BaseWidth}/{s.NeckWidth} on {train.Name} ({train.Count} training, {test.Count} test images, {train.Channels} x {train.Height} x {train.Width}), " +
            $"{s.Epochs} epochs per run, batch {s.BatchSize}, SGD lr {s.Lr.ToString(inv)} (Nesterov 0.9, weight decay 5e-4) x0.1 at epochs {milestones[0] + 1} and {milestones[1] + 1}, " +
            $"crop (padding 4) + flip; the same budget, seeds ({string.Join(", ", s.Seeds)}) and initialisations for every row. " +
            $"Best = best backbone top-1 over epochs {bestAfter + 1}-{s.Epochs} (the recipe's \"after 2/3 of training\"); final = last epoch. Mean ± standard deviation over seeds.");
        text.AppendLine();
        text.AppendLine("| row | objective | backbone best | backbone final | branch 1 final | branch 2 final | branch 3 final |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- | --- |");
        foreach (var key in s.Rows)
        {
            var row = Rows.Single(r => r.Key == key);
            var runs = results.Where(r => r.Row == key).ToList();
            var finals = Enumerable.Range(0, 4).Select(h => MeanSpread(runs.Select(r => r.Metrics[^1].TestTop1[h]))).ToList();
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {row.Name} | {row.Description} | {MeanSpread(runs.Select(r => r.BestBackbone ?? double.NaN))} | {finals[0]} | {finals[1]} | {finals[2]} | {finals[3]} |");
        }

        text.AppendLine();
#if !NO_PLOTS
        text.AppendLine(CultureInfo.InvariantCulture, $"![Backbone test top-1 per epoch]({assetsName}/ablation-backbone.png)");
#endif
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Every epoch of every run: [{assetsName}/ablation.csv]({assetsName}/ablation.csv).");
        text.AppendLine();
        text.AppendLine("## How it was made");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"    {s.CommandLine}");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"on {MachineInfo.Describe(s.Device)}: {results.Count} runs, {wall.TotalMinutes:F1} minutes wall time, {cpu.TotalMinutes:F1} minutes of CPU time ({DateTime.UtcNow:yyyy-MM-dd}).");
        text.AppendLine();
        text.AppendLine("The same command runs the full CIFAR-100 recipe on a GPU, unchanged but for its options (it downloads the data when missing):");
        text.AppendLine();
        text.AppendLine("    dotnet run -c Release --project bench/DTSKD.Benchmarks -p:TorchSharpBackend=cuda-linux -- ablation --data-type cifar100 --epochs 300 --base-width 64 --neck-width 512 --seeds 27,28 --device cuda --output docs/results-cifar100.md");
        File.WriteAllText(output + ".tmp", text.ToString());
        File.Move(output + ".tmp", output, overwrite: true);
        Console.WriteLine($"Wrote {output} and {assets}/");
    }
}
