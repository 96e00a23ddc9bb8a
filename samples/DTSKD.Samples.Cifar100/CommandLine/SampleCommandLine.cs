using System.CommandLine;
using System.CommandLine.Parsing;
using DTSKD.Core.Data;
using DTSKD.Core.Models;

namespace DTSKD.Samples.Cifar100;

/// <summary>What the command line asks for: a training run (the root command), or one of the after-training commands.</summary>
/// <param name="Train">The training run's configuration, for the root command.</param>
/// <param name="Tool">The request of <c>evaluate</c>, <c>export</c> or <c>predict</c>.</param>
public sealed record SampleRequest(ExperimentConfig? Train, ToolRequest? Tool)
{
    /// <summary>The options the command line gave explicitly (by name, such as <c>--lr</c>): on <c>--resume</c>, what changes.</summary>
    public IReadOnlySet<string> Given { get; init; } = new HashSet<string>();

    /// <summary>What the release's spellings on the command line were taken as, one line each, to print before the run.</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];
}

/// <summary>
/// The command line: the release's flags in .NET style, defaulting to the paper's CIFAR-100 recipe, and the commands
/// that use a trained run (<c>evaluate</c>, <c>export</c>, <c>predict</c>).
/// </summary>
public static class SampleCommandLine
{
    private static readonly string[] Decays = ["cos", "linear"];
    private static readonly string[] Devices = ["auto", "cpu", "cuda"];
    private static readonly string[] Precisions = ["auto", "fp32", "bf16", "fp16"];
    private static readonly ExperimentConfig Defaults = new();

    /// <summary>Parses and validates the arguments.</summary>
    /// <returns>The request, or the first error as one line, or that help or the version was shown.</returns>
    public static (SampleRequest? Request, string? Error, bool HelpShown) Parse(string[] args, TextWriter output)
    {
        var (once, repeated) = ReleaseFlags.Repeated(args);
        if (repeated is not null)
        {
            return (null, repeated, false);
        }

        args = once;

        // The release's own flags (its README's command) are the sample's options in another spelling.
        var (translated, notes, releaseError) = ReleaseFlags.Translate(args);
        if (releaseError is not null)
        {
            return (null, releaseError, false);
        }

        args = translated;
        var d = Defaults;
        var lr = Positive(new Option<double>("--lr") { Description = "Initial learning rate.", DefaultValueFactory = _ => d.Lr });
        var schedule = new Option<int[]>("--lr-decay-schedule")
        {
            Description = $"Epoch indices at which the learning rate is multiplied by --lr-decay-rate, as the release counts them (from 0: 150 is the 151st epoch). Default: {string.Join(" ", d.LrDecaySchedule)}.",
            DefaultValueFactory = _ => d.LrDecaySchedule,
            AllowMultipleArgumentsPerToken = true,
        };
        var rate = Positive(new Option<double>("--lr-decay-rate") { Description = "Learning-rate factor at each milestone.", DefaultValueFactory = _ => d.LrDecayRate });
        var wd = NonNegative(new Option<double>("--weight-decay") { Description = "SGD weight decay (on all parameters).", DefaultValueFactory = _ => d.WeightDecay });
        var momentum = NonNegative(new Option<double>("--momentum") { Description = "SGD Nesterov momentum.", DefaultValueFactory = _ => d.Momentum });
        var epochs = Positive(new Option<int>("--epochs") { Description = "Number of epochs.", DefaultValueFactory = _ => d.Epochs });
        var batch = Positive(new Option<int>("--batch-size") { Description = "Training batch size.", DefaultValueFactory = _ => d.BatchSize });
        var objective = new Option<string>("--objective")
        {
            Description = $"What to train: {string.Join(", ", Core.ObjectiveSpec.Keys)} (default {Core.ObjectiveSpec.Recipe}, the paper's recipe; ce is the cross-entropy baseline to compare with). " +
                          $"The DTSKD family takes overrides in brackets, e.g. \"dtskd[t2=off;warmup=20]\" ({Core.ObjectiveSpec.OverrideHelp}), and starts from the loss flags below.",
            DefaultValueFactory = _ => d.Objective,
        };
        objective.Validators.Add(r =>
        {
            try
            {
                Core.ObjectiveSpec.Parse(r.GetValueOrDefault<string>() ?? string.Empty);
            }
            catch (ArgumentException ex)
            {
                r.AddError("--objective: " + ex.Message.Split(" (Parameter", 2)[0]);
            }
        });
        var hskd = new Option<int>("--hskd") { Description = "1: historical teacher on (soft targets on every head); 0: hard-label CE on the backbone.", DefaultValueFactory = _ => 1 };
        hskd.AcceptOnlyFromAmong("0", "1");
        var backbone = NonNegative(new Option<double>("--backbone-weight") { Description = "Weight of the backbone's historical term.", DefaultValueFactory = _ => d.BackboneWeight });
        var b1 = NonNegative(new Option<double>("--b1-weight") { Description = "Weight of branch 1's historical term.", DefaultValueFactory = _ => d.B1Weight });
        var b2 = NonNegative(new Option<double>("--b2-weight") { Description = "Weight of branch 2's historical term.", DefaultValueFactory = _ => d.B2Weight });
        var b3 = NonNegative(new Option<double>("--b3-weight") { Description = "Weight of branch 3's historical term.", DefaultValueFactory = _ => d.B3Weight });
        var ce = NonNegative(new Option<double>("--ce-weight") { Description = "Weight of the historical (or hard-label) part.", DefaultValueFactory = _ => d.CeWeight });
        var kd = NonNegative(new Option<double>("--kd-weight") { Description = "Weight of the structural teacher's KD terms.", DefaultValueFactory = _ => d.KdWeight });
        var temperature = Positive(new Option<double>("--temperature") { Description = "Temperature of the structural teacher's KL.", DefaultValueFactory = _ => d.Temperature });
        var decay = new Option<string>("--coeff-decay") { Description = "Schedule of alpha_t, the one-hot label's weight: cos or linear.", DefaultValueFactory = _ => d.CoeffDecay };
        decay.AcceptOnlyFromAmong(Decays);
        var cosMax = Unit(new Option<double>("--cos-max") { Description = "alpha_t at epoch 0 (cos).", DefaultValueFactory = _ => d.CosMax });
        var cosMin = Unit(new Option<double>("--cos-min") { Description = "alpha_t approached at the end (cos).", DefaultValueFactory = _ => d.CosMin });
        var alphaT = Unit(new Option<double>("--alpha-t") { Description = "The release's --alpha_T (linear): alpha_t = 1 - alpha_T (e+1)/E.", DefaultValueFactory = _ => d.AlphaT });
        var teachersFrom = new Option<int>("--teachers-from-epoch") { Description = "The 0-based epoch from which the teachers speak; before it every head learns from its labels alone (a cross-entropy warm-up of a pretrained backbone). 0: from the start.", DefaultValueFactory = _ => d.TeachersFromEpoch };
        teachersFrom.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 0)
            {
                r.AddError("--teachers-from-epoch must be 0 or more.");
            }
        });
        var detachBranches = new Option<bool>("--detach-branches") { Description = "The branches read the backbone's maps detached and the backbone is a fixed target in the KD terms: no teacher term sends a gradient into the backbone (a fine-tuning remedy, docs/pretrained.md)." };
        var noDownload = new Option<bool>("--no-download") { Description = "Fail instead of downloading CIFAR-100 when it is missing." };
        var experimentsDir = new Option<string>("--experiments-dir") { Description = "Folder for the runs' outputs.", DefaultValueFactory = _ => d.ExperimentsDir };
        var experimentsName = new Option<string?>("--experiments-name")
        {
            Description = "Name of this run's folder (default: <classifier>-<data>-seed<seed>, plus epochs, widths and limits where they differ from the recipe).",
        };
        var resume = new Option<string?>("--resume")
        {
            Description = "Continue a run from its last.ckpt: the run folder given, or (without one) the run the other options name, whatever its epoch count. " +
                          "The run's config.json supplies every option not given; options that change the run's identity (model, widths, data, limits, seed, --hskd, precision) are refused, the others apply from where it stopped.",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var overwrite = new Option<bool>("--overwrite") { Description = "Start afresh in a run folder that already holds a run; the old run is first moved aside to <name>.replaced-<time>, not deleted." };
        var seed = new Option<long>("--seed") { Description = "Seed of the model initialisation, shuffling and augmentation.", DefaultValueFactory = _ => d.Seed };
        var precision = new Option<string>("--precision")
        {
            Description = "Forward/backward format: auto (bf16 on CPUs with native bfloat16, AVX512-BF16 or AMX; fp32 on other CPUs and on CUDA, with TF32), fp32, bf16 or fp16 (with loss scaling). On CUDA the half formats are opt-in: they have not yet been checked on a GPU.",
            DefaultValueFactory = _ => d.Precision,
        };
        precision.AcceptOnlyFromAmong(Precisions);
        var noTf32 = new Option<bool>("--no-tf32") { Description = "On CUDA, keep float32 matrix maths out of TF32." };
        var trainLimit = PositiveIfGiven(new Option<int?>("--train-limit") { Description = "Use only the first N training images (quick runs)." });
        var bestAfter = new Option<int?>("--best-after") { Description = "Best top-1 is taken over the epochs after the first N (default: two thirds of the run, as the release's 200 of 300)." };
        bestAfter.Validators.Add(r =>
        {
            if (Value<int?>(r) is < 0)
            {
                r.AddError("--best-after must be 0 or more.");
            }
        });
        var logInterval = Positive(new Option<int>("--log-interval") { Description = "Report progress every N steps.", DefaultValueFactory = _ => d.LogInterval });
        var tsne = new Option<bool>("--tsne") { Description = "After training, keep the best epoch's test-set outputs (backbone logits, features, labels: <run>/tsne/test-outputs.safetensors) and draw a t-SNE map of the features (<run>/tsne/tsne.png), as the release's --tsne 1." };
        var noTensorBoard = new Option<bool>("--no-tensorboard") { Description = "Do not write TensorBoard event files (written by default into <run>/tensorboard)." };
        var imageSize = PositiveIfGiven(new Option<int?>("--image-size") { Description = "--data-type folder: the side of the square images the model sees (default 32; 96 and more get ImageNet's random resized crop and, with --stem auto, its stem)." });
        var channels = new Option<int>("--channels") { Description = "--data-type folder: 3 (RGB) or 1 (grayscale), whatever the files hold.", DefaultValueFactory = _ => d.Channels };
        channels.AcceptOnlyFromAmong("1", "3");
        var imageMode = new Option<string>("--image-mode") { Description = "--data-type folder: auto (cached when the decoded images fit half the memory, else streamed), cached or streaming.", DefaultValueFactory = _ => d.ImageMode };
        imageMode.AcceptOnlyFromAmong("auto", "cached", "streaming");
        var imageCache = new Option<string?>("--image-cache") { Description = "--data-type folder: where decoded images are cached (default ~/.cache/dtskd/images)." };
        var skipBad = new Option<bool>("--skip-bad-images") { Description = "--data-type folder: leave unusable images out (listed in <run>/skipped-images.txt) instead of stopping." };
        var stem = new Option<string>("--stem") { Description = "The network's first layers: auto (ImageNet's from 96 pixels on), cifar (the release's, full resolution) or imagenet (7x7 stride 2 and a max-pool).", DefaultValueFactory = _ => d.Stem };
        stem.AcceptOnlyFromAmong("auto", "cifar", "imagenet");
        var shared = new SharedOptions();
        var tuning = new PretrainedStart.Options();
        var ranks = new SampleRanks.Options();

        var root = new RootCommand("Reproduces DTSKD's CIFAR-100 ResNet-18 experiment (Dual Teachers for Self-Knowledge Distillation) with DTSKD.Core. " +
                                   "After training: evaluate, export and predict (see their --help).")
        {
            lr, schedule, rate, wd, momentum, epochs, batch, shared.EvalBatch, objective, hskd, backbone, b1, b2, b3, ce, kd, temperature, decay, cosMax, cosMin, alphaT, teachersFrom, detachBranches,
            shared.Model, shared.DataType, shared.DataPath, noDownload, experimentsDir, experimentsName, resume, overwrite, seed, shared.Device, precision, noTf32,
            shared.Threads, shared.BaseWidth, shared.NeckWidth, trainLimit, shared.TestLimit, bestAfter, logInterval, noTensorBoard, tsne,
            imageSize, channels, imageMode, imageCache, skipBad, stem,
        };
        foreach (var option in tuning.All.Concat(ranks.All))
        {
            root.Options.Add(option);
        }

        // The release's spellings of the same options (--lr_decay_schedule, --HSKD, --end_epoch, ...).
        foreach (var option in root.Options)
        {
            foreach (var alias in ReleaseFlags.AliasesOf(option.Name))
            {
                option.Aliases.Add(alias);
            }
        }

        // Sample.RunAsync acts on the parse result itself; an action is still needed, because a command with subcommands
        // and none is a parse error ("Required command was not provided") when no subcommand is given.
        root.SetAction(_ => Sample.Ok);
        var tools = AfterTrainingCommands.Add(root);

        var result = root.Parse(args);
        if (result.Errors.Count > 0)
        {
            return (null, OneLine(result.Errors[0]), false);
        }

        if (args.Contains("--version"))
        {
            output.WriteLine(VersionText());
            return (null, null, true);
        }

        if (result.Action is System.CommandLine.Help.HelpAction)
        {
            result.Invoke(new InvocationConfiguration { Output = output });
            return (null, null, true);
        }

        if (result.CommandResult.Command != root)
        {
            var (tool, toolError) = tools.Read(result);
            return tool is null ? (null, toolError, false) : (new SampleRequest(null, tool), null, false);
        }

        var config = ranks.Read(result, tuning.Read(result, shared.Read(result, new ExperimentConfig
        {
            Lr = result.GetValue(lr), LrDecaySchedule = result.GetValue(schedule) ?? [], LrDecayRate = result.GetValue(rate),
            WeightDecay = result.GetValue(wd), Momentum = result.GetValue(momentum), Epochs = result.GetValue(epochs),
            BatchSize = result.GetValue(batch), Objective = Core.ObjectiveSpec.Parse(result.GetValue(objective)!).Text, Hskd = result.GetValue(hskd) == 1,
            BackboneWeight = result.GetValue(backbone), B1Weight = result.GetValue(b1), B2Weight = result.GetValue(b2), B3Weight = result.GetValue(b3),
            CeWeight = result.GetValue(ce), KdWeight = result.GetValue(kd), Temperature = result.GetValue(temperature),
            CoeffDecay = result.GetValue(decay)!, CosMax = result.GetValue(cosMax), CosMin = result.GetValue(cosMin), AlphaT = result.GetValue(alphaT),
            TeachersFromEpoch = result.GetValue(teachersFrom), DetachBranches = result.GetValue(detachBranches),
            Download = !result.GetValue(noDownload), ExperimentsDir = result.GetValue(experimentsDir)!, ExperimentsName = result.GetValue(experimentsName),
            Resume = result.GetResult(resume) is not null, ResumeFrom = result.GetValue(resume), Overwrite = result.GetValue(overwrite), Seed = result.GetValue(seed),
            Precision = result.GetValue(precision)!, Tf32 = !result.GetValue(noTf32), TrainLimit = result.GetValue(trainLimit),
            BestAfter = result.GetValue(bestAfter), LogInterval = result.GetValue(logInterval), TensorBoard = !result.GetValue(noTensorBoard), Tsne = result.GetValue(tsne),
            ImageSize = result.GetValue(imageSize), Channels = result.GetValue(channels), ImageMode = result.GetValue(imageMode)!, ImageCache = result.GetValue(imageCache),
            SkipBadImages = result.GetValue(skipBad), Stem = result.GetValue(stem)!,
        })));

        var folderOnly = new Option[] { imageSize, channels, imageMode, imageCache, skipBad }.FirstOrDefault(o => result.GetResult(o) is { Implicit: false });
        if (config.DataType != SampleData.Folder && folderOnly is not null)
        {
            return (null, $"{folderOnly.Name} applies to --data-type folder only.", false);
        }

        if (config.DataType == SampleData.Folder && config.DataPath is null && !(config.Resume && config.ResumeFrom is not null))
        {
            return (null, "--data-type folder needs --data-path: the folder that holds one folder of images per class.", false);
        }

        if (config.CosMin > config.CosMax)
        {
            return (null, $"--cos-min ({config.CosMin}) must not exceed --cos-max ({config.CosMax}).", false);
        }

        if (config.LrDecaySchedule.Any(m => m < 0))
        {
            return (null, "--lr-decay-schedule takes epoch indices >= 0.", false);
        }

        if (config.Resume && config.Overwrite)
        {
            return (null, "--resume and --overwrite exclude each other: continue the run, or start it afresh.", false);
        }

        var given = root.Options.Where(o => result.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        var (resolved, pretrainedError) = PretrainedStart.Resolve(config, given);
        if (resolved is null)
        {
            return (null, pretrainedError, false);
        }

        IReadOnlyList<string> allNotes = PretrainedStart.DefaultsToCrossEntropy(resolved, given) ? [.. notes, PretrainedStart.FineTuningObjectiveNote] : notes;
        allNotes = SampleRecipe.ShortBudgetNote(resolved, given) is { } shortBudget ? [.. allNotes, shortBudget] : allNotes;
        return (new SampleRequest(resolved, null) { Given = given, Notes = allNotes }, null, false);
    }

    /// <summary>The package versions a run uses (DTSKD.Core and TorchSharp).</summary>
    public static string VersionText()
    {
        static string Version(Type t) =>
            t.Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
                .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion.Split('+')[0]
            ?? t.Assembly.GetName().Version?.ToString() ?? "unknown";
        return $"DTSKD.Core {Version(typeof(Core.DualTeacherLoss))}, TorchSharp {Version(typeof(TorchSharp.torch))}";
    }

    // System.CommandLine's messages can span lines and may not say which option they are about.
    internal static string OneLine(ParseError error)
    {
        var message = string.Join(" ", error.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        var option = error.SymbolResult switch
        {
            OptionResult o => o.Option.Name,
            ArgumentResult { Parent: OptionResult o } => o.Option.Name,
            _ => null,
        };
        return option is null || message.Contains(option, StringComparison.Ordinal) ? message : $"{option}: {message}";
    }

    internal static Option<T> Positive<T>(Option<T> option) where T : struct, IComparable<T> =>
        Check(option, v => v.CompareTo(default) > 0, "must be greater than 0");

    internal static Option<int?> PositiveIfGiven(Option<int?> option)
    {
        option.Validators.Add(r =>
        {
            if (Value<int?>(r) is <= 0)
            {
                r.AddError($"{r.Option.Name} must be greater than 0.");
            }
        });
        return option;
    }

    private static Option<T> NonNegative<T>(Option<T> option) where T : struct, IComparable<T> =>
        Check(option, v => v.CompareTo(default) >= 0, "must be 0 or more");

    private static Option<double> Unit(Option<double> option) =>
        Check(option, v => v is >= 0 and <= 1, "must be between 0 and 1");

    private static Option<T> Check<T>(Option<T> option, Func<T, bool> valid, string rule)
    {
        option.Validators.Add(r =>
        {
            var value = Value<T>(r);
            if (value is not null && !valid(value))
            {
                r.AddError($"{option.Name} {rule}; got {value}.");
            }
        });
        return option;
    }

    /// <summary>The option's value, or default when it did not parse (the parse error is reported on its own).</summary>
    private static T? Value<T>(OptionResult result)
    {
        try
        {
            return result.GetValueOrDefault<T>();
        }
        catch (InvalidOperationException)
        {
            return default;
        }
    }

    /// <summary>The options of the model, the data and the machine, which training and the after-training commands share.</summary>
    internal sealed class SharedOptions
    {
        public Option<string> Model { get; } = new("--classifier-type") { Description = $"Model: {string.Join(", ", MultiBranchModels.Names)}.", DefaultValueFactory = _ => Defaults.ClassifierType };

        public Option<string> DataType { get; } = new("--data-type") { Description = "Data set: " + string.Join(", ", StandardDatasets.Names) + ", or folder (your own images in one folder per class, --data-path).", DefaultValueFactory = _ => Defaults.DataType };

        public Option<string?> DataPath { get; } = new("--data-path") { Description = "Data folder (default: ./data for CIFAR, /usr/share/datasets/fashion-mnist for Fashion-MNIST; the image folder for --data-type folder)." };

        public Option<int?> TestLimit { get; } = PositiveIfGiven(new Option<int?>("--test-limit") { Description = "Use only the first N test images (quick runs)." });

        public Option<int> BaseWidth { get; } = Positive(new Option<int>("--base-width") { Description = "The network's width (64 = reference; channel counts scale with it).", DefaultValueFactory = _ => Defaults.BaseWidth });

        public Option<int?> NeckWidth { get; } = PositiveIfGiven(new Option<int?>("--neck-width") { Description = "Channels of the branch neck (default: the model's reference, 512; 1024 for shufflev2_dtskd)." });

        public Option<int> EvalBatch { get; } = Positive(new Option<int>("--eval-batch-size") { Description = "Evaluation batch size.", DefaultValueFactory = _ => Defaults.EvalBatchSize });

        public Option<string> Device { get; } = new("--device") { Description = "auto (CUDA when available), cpu or cuda.", DefaultValueFactory = _ => Defaults.Device };

        public Option<int> Threads { get; } = Positive(new Option<int>("--threads")
        {
            Description = "CPU threads for LibTorch (default: all cores). Results depend on it in the last bits: resume with the same count.",
            DefaultValueFactory = _ => Defaults.Threads,
        });

        public SharedOptions()
        {
            Model.Validators.Add(r =>
            {
                if (Value<string>(r) is { } name && !MultiBranchModels.IsKnown(name))
                {
                    r.AddError($"Unknown --classifier-type '{name}'. Known models: {string.Join(", ", MultiBranchModels.Names)}.");
                }
            });
            DataType.AcceptOnlyFromAmong([.. SampleData.Types]);
            Device.AcceptOnlyFromAmong(Devices);
        }

        public IEnumerable<Option> All => [Model, DataType, DataPath, TestLimit, BaseWidth, NeckWidth, EvalBatch, Device, Threads];

        /// <summary>The shared options' values, on top of <paramref name="config"/>.</summary>
        public ExperimentConfig Read(ParseResult result, ExperimentConfig config) => config with
        {
            ClassifierType = result.GetValue(Model)!.ToLowerInvariant(), DataType = result.GetValue(DataType)!, DataPath = result.GetValue(DataPath),
            TestLimit = result.GetValue(TestLimit), BaseWidth = result.GetValue(BaseWidth), NeckWidth = result.GetValue(NeckWidth),
            EvalBatchSize = result.GetValue(EvalBatch), Device = result.GetValue(Device)!, Threads = result.GetValue(Threads),
        };
    }
}
