using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using DTSKD.Core;
using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using static TorchSharp.torch;

namespace DTSKD.Benchmarks.Study;

/// <summary>
/// What each teacher buys, on a standard data set or your own image folder: the same model, data and budget trained with
/// several objectives (<see cref="ObjectiveSpec"/>), several seeds each, then a table, a verdict against cross-entropy, a
/// plot and a CSV. Every finished run is a file of its own, so the study can be fanned out over a Slurm job array or a
/// Kubernetes Indexed Job (<see cref="StudyShard"/>) and merged afterwards (<c>ablation merge</c>).
/// </summary>
/// <remarks>
/// It lives in the benchmarks rather than the sample: it is many trainings under one budget, and the studies of
/// docs/results.md were made with it, so their command lines keep working; the sample stays one training per run folder.
/// </remarks>
public static class AblationStudy
{
    private static readonly TrainerOptions Recipe = new();

    public static Command Command(Option<string> deviceOption, Func<string, Device> resolve, string[] args)
    {
        var dataType = new Option<string>("--data-type") { Description = "fashion-mnist, cifar100, cifar10, or folder (your own images: one folder per class).", DefaultValueFactory = _ => StandardDatasets.FashionMnist };
        dataType.AcceptOnlyFromAmong([.. StandardDatasets.Names, "folder"]);
        var dataPath = new Option<string?>("--data-path") { Description = "Data folder (default: /usr/share/datasets/fashion-mnist, or ./data for CIFAR; required for folder)." };
        var imageSize = new Option<int?>("--image-size") { Description = "--data-type folder: the side of the square images the model sees (default 32)." };
        var channels = new Option<int>("--channels") { Description = "--data-type folder: 3 (RGB) or 1 (grayscale).", DefaultValueFactory = _ => 3 };
        channels.AcceptOnlyFromAmong("1", "3");
        var imageCache = new Option<string?>("--image-cache") { Description = "--data-type folder: where decoded images are cached (default ~/.cache/dtskd/images)." };
        var epochs = new Option<int>("--epochs") { Description = "Epochs per run (lr x0.1 at 1/2 and 3/4; best counted from 2/3 on).", DefaultValueFactory = _ => 10 };
        var trainLimit = new Option<int?>("--train-limit") { Description = "Use the first N training images." };
        var testLimit = new Option<int?>("--test-limit") { Description = "Use the first N test images." };
        var batch = new Option<int>("--batch-size") { DefaultValueFactory = _ => Recipe.BatchSize, Description = "Batch size." };
        var lr = new Option<double>("--lr") { DefaultValueFactory = _ => Recipe.LearningRate, Description = "Initial learning rate." };
        var model = new Option<string>("--model") { DefaultValueFactory = _ => "resnet18_dtskd", Description = "Model: " + string.Join(", ", MultiBranchModels.Names) + "." };
        model.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string>() is { } name && !MultiBranchModels.IsKnown(name))
            {
                r.AddError($"Unknown --model '{name}'. Known models: {string.Join(", ", MultiBranchModels.Names)}.");
            }
        });
        var baseWidth = new Option<int>("--base-width") { DefaultValueFactory = _ => 16, Description = "Base width (64 = reference)." };
        var stem = new Option<string>("--stem") { Description = "The network's first layers: cifar (the release's, full resolution) or imagenet (7x7 stride 2 and a max-pool, as a pretrained ResNet's).", DefaultValueFactory = _ => "cifar" };
        stem.AcceptOnlyFromAmong("cifar", "imagenet");
        var neckWidth = new Option<int>("--neck-width") { DefaultValueFactory = _ => 128, Description = "Neck width (512 = reference)." };
        var precision = new Option<string>("--precision") { DefaultValueFactory = _ => "fp32", Description = "fp32 or bf16 (bfloat16 passes, float32 masters)." };
        precision.AcceptOnlyFromAmong("fp32", "bf16");
        var seeds = new Option<string>("--seeds") { DefaultValueFactory = _ => "1,2", Description = "Comma-separated seeds; every row runs with each." };
        var rows = new Option<string>("--rows")
        {
            DefaultValueFactory = _ => string.Join(",", ObjectiveSpec.Keys),
            Description = "Comma-separated rows: " + string.Join(", ", ObjectiveSpec.Keys) + "; a DTSKD row takes overrides in brackets, e.g. dtskd[t2=off;warmup=10] (" + ObjectiveSpec.OverrideHelp + "). Include ce for the verdict.",
        };
        var noise = new Option<double>("--label-noise") { Description = "Replace this fraction of the training labels by another class (symmetric noise, seeded; test labels untouched).", DefaultValueFactory = _ => 0 };
        var noiseSeed = new Option<long>("--label-noise-seed") { Description = "The seed of the label noise (the same noisy labels for every row and seed).", DefaultValueFactory = _ => 1 };
        var pretrained = new Option<string?>("--pretrained") { Description = "Start every run from this network: torchvision resnet18/resnet34 weights (.pth, .safetensors) or an ONNX classifier (.onnx); lr 0.01, weight decay 1e-4 and batch 32 unless given (docs/pretrained.md)." };
        var branchPoints = new Option<string[]?>("--branch-points") { Description = "With an .onnx --pretrained: the tensors the branches attach to (default: the inputs of its strided convolutions).", AllowMultipleArgumentsPerToken = true };
        var freeze = new Option<string>("--freeze") { Description = "With --pretrained: the last frozen stage (none, stem, stage1..).", DefaultValueFactory = _ => "none" };
        var freezeBn = new Option<bool>("--freeze-bn") { Description = "With --pretrained: the pretrained batch norms keep their statistics." };
        var detachBranches = new Option<bool>("--detach-branches") { Description = "The branches read the backbone detached: no branch term trains the backbone (combine with a row's [detach] for the KD target)." };
        var lrFactor = new Option<double?>("--backbone-lr-factor") { Description = $"With --pretrained: the pretrained parameters' share of --lr (default {FineTuning.RecipeBackboneFactor})." };
        var warmup = new Option<int?>("--warmup-epochs") { Description = $"With --pretrained: epochs of linear warm-up (default {FineTuning.RecipeWarmupEpochs})." };
        var title = new Option<string>("--title") { DefaultValueFactory = _ => "What each teacher buys", Description = "The report's title." };
        var output = new Option<string>("--output") { DefaultValueFactory = _ => "docs/results/ablation.md", Description = "The report (Markdown); its figure and CSV go next to it, in <name>/." };
        var runsDir = new Option<string?>("--runs-dir") { Description = "The folder every finished run is written to, shared by the shards (default: <output's name>/runs next to the report)." };
        var shard = new Option<string?>("--shard") { Description = "Run only shard i of n (i/n, 0-based): the runs at positions i, i+n, ... Default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX when set, else all." };
        var shards = new Option<int?>("--shards") { Description = "The number of shards, where the scheduler does not give it (a Kubernetes Indexed Job's completions)." };
        var threads = new Option<int?>("--threads") { Description = "LibTorch's CPU threads (default: one per core; under a scheduler, the cores it allocated, e.g. $SLURM_CPUS_PER_TASK). Not part of the study: shards may differ." };
        var command = new Command("ablation", "Trains every row with the same budget and writes the table, verdict, plot and CSV; sharded, writes its runs for `ablation merge`.")
        {
            deviceOption, dataType, dataPath, imageSize, channels, imageCache, epochs, trainLimit, testLimit, batch, lr, model, baseWidth, neckWidth, precision,
            seeds, rows, noise, noiseSeed, title, output, runsDir, shard, shards, threads, pretrained, branchPoints, freeze, freezeBn, detachBranches, lrFactor, warmup, stem,
        };

        // Checked while parsing, so that nothing of a study (its runs folder, study.json) is written for settings it cannot run.
        noise.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double>() is var fraction && fraction >= 1)
            {
                r.AddError($"--label-noise must be a fraction in [0, 1); got {fraction.ToString(CultureInfo.InvariantCulture)}.");
            }
        });
        BenchCommandLine.AllowZero(noise, lrFactor, warmup);
        BenchCommandLine.Check(command);

        var mergeRuns = new Option<string>("--runs-dir") { Description = "The runs folder the shards wrote.", Required = true };
        var mergeOutput = new Option<string>("--output") { Description = "The report (Markdown); its figure and CSV go next to it, in <name>/.", Required = true };
        var merge = new Command("merge", "Writes the report of a study from its runs folder, once every shard has finished.") { mergeRuns, mergeOutput };
        merge.SetAction(r => Fail(() => StudyReport.Merge(r.GetValue(mergeRuns)!, r.GetValue(mergeOutput)!, Console.Out)));
        command.Add(merge);

        var budgetRuns = new Option<string[]>("--runs-dir") { Description = "The runs folders of the studies, one per budget (the same rows, seeds and data; a ce row).", Required = true, AllowMultipleArgumentsPerToken = true };
        var budgetOutput = new Option<string>("--output") { Description = "The report (Markdown); its plot goes next to it, in <name>/.", Required = true };
        var budget = new Command("budget", "Each row's gain over cross-entropy against the training budget, from finished studies of several budgets.") { budgetRuns, budgetOutput };
        budget.SetAction(r => Fail(() => BudgetReport.Write(r.GetValue(budgetRuns)!, r.GetValue(budgetOutput)!, Console.Out)));
        command.Add(budget);

        command.SetAction(r => Fail(() =>
        {
            if (r.GetValue(threads) is { } count)
            {
                set_num_threads(count);
            }

            var rowList = ObjectiveSpec.ParseList(r.GetValue(rows)!);
            long[] seedList = [.. r.GetValue(seeds)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : throw new ArgumentException($"--seeds: '{s}' is not a whole number."))];
            var type = r.GetValue(dataType)!;
            if (type == "folder" && r.GetValue(dataPath) is null)
            {
                throw new ArgumentException("--data-type folder needs --data-path: the folder that holds one folder of images per class.");
            }

            var from = r.GetValue(pretrained) is { } file ? Path.GetFullPath(file) : null;
            if (from is not null && !File.Exists(from))
            {
                throw new FileNotFoundException($"--pretrained '{r.GetValue(pretrained)}' does not exist.");
            }

            var recipe = TrainerOptions.FineTuningRecipe(r.GetValue(epochs));
            bool Given(Option o) => r.GetResult(o) is { Implicit: false };
            var settings = new StudySettings
            {
                Pretrained = from, BranchPoints = r.GetValue(branchPoints) is { Length: > 0 } points ? points : null, Freeze = from is null ? null : r.GetValue(freeze), FreezeBn = r.GetValue(freezeBn), DetachBranches = r.GetValue(detachBranches),
                BackboneLrFactor = r.GetValue(lrFactor), WarmupEpochs = r.GetValue(warmup), WeightDecay = from is null ? null : recipe.WeightDecay,
                Stem = from is null && r.GetValue(stem) == "imagenet" ? "imagenet" : null,
                DataType = type, DataPath = r.GetValue(dataPath), ImageSize = type == "folder" ? r.GetValue(imageSize) ?? 32 : null,
                Channels = type == "folder" ? r.GetValue(channels) : 0, Epochs = r.GetValue(epochs), TrainLimit = r.GetValue(trainLimit), TestLimit = r.GetValue(testLimit),
                BatchSize = from is not null && !Given(batch) ? recipe.BatchSize : r.GetValue(batch), Lr = from is not null && !Given(lr) ? recipe.LearningRate : r.GetValue(lr),
                Model = from is null ? r.GetValue(model)! : Path.GetFileName(from), BaseWidth = r.GetValue(baseWidth), NeckWidth = r.GetValue(neckWidth),
                Precision = r.GetValue(precision)!, LabelNoise = r.GetValue(noise), LabelNoiseSeed = r.GetValue(noiseSeed),
                Rows = [.. rowList.Select(o => o.Text)], Seeds = seedList, Device = r.GetValue(deviceOption)!, Title = r.GetValue(title)!,
                Command = "dotnet run -c Release --project bench/DTSKD.Benchmarks -- " + string.Join(' ', WithoutShard(args).Select(Quote)),
            };
            var report = r.GetValue(output)!;
            var runs = r.GetValue(runsDir) ?? Path.Combine(Path.ChangeExtension(Path.GetFullPath(report), null), "runs");
            var part = StudyShard.Resolve(r.GetValue(shard), r.GetValue(shards), Environment.GetEnvironmentVariable);
            return Run(settings, resolve(settings.Device), runs, part, r.GetValue(imageCache), report);
        }));
        return command;
    }

    /// <summary>Bad input is one line and exit code 2; an incomplete merge exits 1 from its own check.</summary>
    private static int Fail(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or NotSupportedException)
        {
            Console.Error.WriteLine($"error: {ex.Message.Split(" (Parameter", 2)[0]}");
            return 2;
        }
    }

    private static IEnumerable<string> WithoutShard(string[] args)
    {
        for (var i = 0; i < args.Length; i++)
        {
            // Which shard, and the threads it runs with, are not the study: every shard writes the same command.
            if (args[i] is "--shard" or "--shards" or "--threads")
            {
                i++;
            }
            else if (!args[i].StartsWith("--shard=", StringComparison.Ordinal) && !args[i].StartsWith("--shards=", StringComparison.Ordinal) && !args[i].StartsWith("--threads=", StringComparison.Ordinal))
            {
                yield return args[i];
            }
        }
    }

    private static string Quote(string arg) => arg.IndexOfAny(['[', ';', ' ', ':']) >= 0 ? $"\"{arg}\"" : arg;

    private static int Run(StudySettings s, Device device, string runsFolder, StudyShard shard, string? imageCache, string report)
    {
        s.Claim(runsFolder);
        foreach (var leftover in AtomicFile.RemoveLeftovers(runsFolder))
        {
            Console.WriteLine($"Removed '{leftover}', a run file a stopped shard left half-written.");
        }

        var study = s.Fingerprint;
        var mine = s.Runs.Select((run, position) => (run.Row, run.Seed, position)).Where(r => shard.Takes(r.position)).ToList();
        var todo = mine.Where(r => StudyRun.TryRead(runsFolder, r.Row, r.Seed, study) is null).ToList();
        Console.WriteLine($"Study {study} in '{runsFolder}': {s.Runs.Count} runs; shard {shard.Index} of {shard.Count} ({shard.Source}) takes {mine.Count}, {mine.Count - todo.Count} already finished.");
        if (todo.Count > 0)
        {
            using var data = StudyData.Open(s, imageCache);
            var (train, test) = (data.Train, data.Test);
            var bestAfter = TrainerOptions.LastThirdStart(s.Epochs);
            var milestones = TrainerOptions.ScaledMilestones(s.Epochs);
            var machine = MachineInfo.Describe(device);
            Console.WriteLine($"{train.Name}: {train.Count} train / {test.Count} test; {s.Model} {(s.Pretrained is null ? $"{s.BaseWidth}/{s.NeckWidth}" : $"pretrained, neck {s.NeckWidth}, freeze {s.Freeze}")}; {s.Epochs} epochs, lr {s.Lr} x0.1 at {string.Join(",", milestones)}; best from epoch {bestAfter + 1}; {s.Precision} on {device.type}");
            foreach (var (row, seed, _) in todo)
            {
                manual_seed(seed);
#if NO_PLOTS
                PretrainedNetwork? pretrained = s.Pretrained is null ? null : throw new NotSupportedException("--pretrained needs DTSKD.Core.Onnx and DTSKD.Core.Interop, which this build leaves out.");
#else
                var pretrained = s.Pretrained is null ? null : StudyPretrained.Load(s, train.ClassCount, train.Shape.Channels);
#endif
                using var network = pretrained?.Model ?? MultiBranchModels.Create(s.Model, new MultiBranchModelOptions
                {
                    ClassCount = train.ClassCount, InputChannels = train.Shape.Channels, BaseWidth = s.BaseWidth, NeckWidth = s.NeckWidth,
                    Stem = s.Stem == "imagenet" ? ModelStem.ImageNet : ModelStem.Cifar,
                });
                network.BranchesDetached = s.DetachBranches;
                var objective = row.Create(network, train.Count, device);
                using var owned = objective as IDisposable;
                var options = new TrainerOptions
                {
                    Epochs = s.Epochs, BatchSize = s.BatchSize, LearningRate = s.Lr, Milestones = milestones, BestAfterEpoch = bestAfter,
                    Seed = seed, Device = device, Precision = s.Precision == "bf16" ? TrainingPrecision.BFloat16 : TrainingPrecision.Float32, LogInterval = 1_000_000,
                };
                var preprocessing = data.Preprocessing;
#if !NO_PLOTS
                if (pretrained is not null)
                {
                    (options.WeightDecay, options.FineTuning, preprocessing) = (s.WeightDecay ?? options.WeightDecay, StudyPretrained.Tuning(s, pretrained), StudyPretrained.Preprocessing(s, pretrained));
                }
#endif
                using var trainer = new Trainer(network, objective, train, test, preprocessing, options);
                var clock = Stopwatch.StartNew();
                var result = trainer.Run();
                StudyRun.From(row, seed, study, result, clock.Elapsed.TotalSeconds, machine, train.Count, test.Count).Write(runsFolder, row);
                var last = result.Metrics[^1];
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{row.Text,-24} seed {seed}: best {result.BestTop1:F2}  final {string.Join(" / ", last.TestTop1.Select(t => t.ToString("F2", CultureInfo.InvariantCulture)))}  train {last.TrainTop1:F2}  ({clock.Elapsed.TotalSeconds:F0} s)"));
            }
        }

        if (!shard.IsWhole)
        {
            Console.WriteLine($"Shard {shard.Index} of {shard.Count} done. Once every shard is: dotnet run -c Release --project bench/DTSKD.Benchmarks -- ablation merge --runs-dir {runsFolder} --output {report}");
            return 0;
        }

        return StudyReport.Merge(runsFolder, report, Console.Out);
    }
}
