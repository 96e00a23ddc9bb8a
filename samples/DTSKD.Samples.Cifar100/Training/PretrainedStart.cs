using System.CommandLine;
using DTSKD.Core.Interop;
using DTSKD.Core.Models;
using DTSKD.Core.Onnx.Import;
using DTSKD.Core.Training;
using Spectre.Console;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// A run that starts from torchvision's ImageNet weights (<c>--pretrained</c>): the options of the fine-tuning recipe, the
/// checks that the file and the data fit, and the network built around the file's backbone.
/// </summary>
internal static class PretrainedStart
{
    private static readonly string[] Stages = ["none", "stem", "stage1", "stage2", "stage3", "stage4"];
    private static readonly string[] WeightFiles = [".pth", ".pt", ".bin", ".safetensors"];
    private static readonly string[] BranchOptions = ["--branch-points", "--branches"];
    private static readonly string[] TuningOptions = ["--freeze", "--freeze-bn", "--backbone-lr-factor", "--warmup-epochs", "--branch-points", "--branches"];

    /// <summary>The options that shape a distilling objective: one of them given asks for DTSKD, not the fine-tuning default.</summary>
    internal static readonly string[] DistillationOptions =
    [
        "--hskd", "--backbone-weight", "--b1-weight", "--b2-weight", "--b3-weight", "--ce-weight", "--kd-weight", "--temperature",
        "--coeff-decay", "--cos-max", "--cos-min", "--alpha-t", "--teachers-from-epoch", "--detach-branches",
    ];

    /// <summary>The objective a new <c>--pretrained</c> run trains when none is asked for.</summary>
    public const string FineTuningObjective = "ce";

    /// <summary>What the sample prints when it picks <see cref="FineTuningObjective"/> for a pretrained start.</summary>
    public const string FineTuningObjectiveNote =
        "--pretrained trains with cross-entropy (--objective ce) unless an objective is given: fine-tuned, every distilling objective measured " +
        "stayed below it in every seed (docs/pretrained.md). --objective dtskd distills.";

    /// <summary>The <c>--classifier-type</c> a run from an ONNX network records: the network is the file's.</summary>
    public const string OnnxModel = "onnx";

    /// <summary>The command line's fine-tuning options.</summary>
    internal sealed class Options
    {
        public Option<string?> Pretrained { get; } = new("--pretrained")
        {
            Description = "Start from a pretrained network (docs/pretrained.md): torchvision resnet18/resnet34 ImageNet weights (.pth, .safetensors), or an ONNX image classifier (.onnx; ML.NET's ResNet18.onnx is recognised). " +
                          "The backbone comes from the file, the classifier, neck and branches are new, the images take the network's normalisation; the fine-tuning recipe's lr 0.01, weight decay 1e-4 and batch 32 apply unless given, and the objective is cross-entropy unless --objective (or a loss flag) asks for another: fine-tuned, it measured best.",
        };

        public Option<string[]> BranchPoints { get; } = new("--branch-points")
        {
            Description = "With an .onnx --pretrained: the tensors (ONNX value names) the branches attach to, shallowest first, one branch each (default: the ends of its deepest stages, where the map shrinks).",
            AllowMultipleArgumentsPerToken = true,
        };

        public Option<int?> Branches { get; } = new("--branches")
        {
            Description = $"With an .onnx --pretrained: how many branches the default search attaches, at the ends of the network's deepest stages before its feature (default {OnnxImportOptions.RecipeBranchCount}, as the paper's networks).",
        };

        public Option<string> Freeze { get; } = new("--freeze") { Description = "With --pretrained: keep the backbone frozen up to this stage: none, stem, stage1..stage4 (its batch norms keep their statistics).", DefaultValueFactory = _ => "none" };

        public Option<bool> FreezeBn { get; } = new("--freeze-bn") { Description = "With --pretrained: every pretrained batch norm keeps ImageNet's statistics (eval mode while training)." };

        public Option<double> BackboneLrFactor { get; } = SampleCommandLine.Positive(new Option<double>("--backbone-lr-factor")
        {
            Description = "With --pretrained: the pretrained parameters learn at this factor of --lr (the new heads at --lr).",
            DefaultValueFactory = _ => Core.Training.FineTuning.RecipeBackboneFactor,
        });

        public Option<int> WarmupEpochs { get; } = new("--warmup-epochs")
        {
            Description = "With --pretrained: epochs over which the learning rate rises linearly, step by step, to --lr (0 for none).",
            DefaultValueFactory = _ => Core.Training.FineTuning.RecipeWarmupEpochs,
        };

        public Options()
        {
            Freeze.AcceptOnlyFromAmong(Stages);
            Branches.Validators.Add(r =>
            {
                if (r.GetValueOrDefault<int?>() is < 1)
                {
                    r.AddError("--branches must be 1 or more.");
                }
            });
            WarmupEpochs.Validators.Add(r =>
            {
                if (r.GetValueOrDefault<int>() < 0)
                {
                    r.AddError("--warmup-epochs must be 0 or more.");
                }
            });
        }

        public IEnumerable<Option> All => [Pretrained, BranchPoints, Branches, Freeze, FreezeBn, BackboneLrFactor, WarmupEpochs];

        /// <summary>The options' values on top of <paramref name="config"/>.</summary>
        public ExperimentConfig Read(ParseResult result, ExperimentConfig config) => config with
        {
            Pretrained = result.GetValue(Pretrained), Freeze = result.GetValue(Freeze)!, FreezeBn = result.GetValue(FreezeBn),
            BackboneLrFactor = result.GetValue(BackboneLrFactor), WarmupEpochs = result.GetValue(WarmupEpochs),
            BranchPoints = result.GetValue(BranchPoints) is { Length: > 0 } points ? points : null, Branches = result.GetValue(Branches),
        };
    }

    /// <summary>
    /// Checks a <c>--pretrained</c> start before anything is written: the file is torchvision weights, the model options
    /// given agree with it, the images are large enough; then fills in the model from the file and the recipe's numbers
    /// for the options not given.
    /// </summary>
    /// <returns>The configuration to run, or one line saying what does not fit.</returns>
    public static (ExperimentConfig? Config, string? Error) Resolve(ExperimentConfig config, IReadOnlySet<string> given)
    {
        var (resolved, error) = ResolveFile(config, given);
        if (resolved?.Pretrained is not { } file || resolved.Resume)
        {
            return (resolved, error);
        }

        // The file as the run starts from it: a resume or an evaluation on another file is refused.
        try
        {
            return (resolved with { PretrainedSha256 = Sha256(file) }, null);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (null, $"--pretrained '{file}' cannot be read: {ex.Message}");
        }
    }

    private static (ExperimentConfig? Config, string? Error) ResolveFile(ExperimentConfig config, IReadOnlySet<string> given)
    {
        var tuningOnly = TuningOptions.FirstOrDefault(given.Contains);
        if (config.Pretrained is not { } path)
        {
            return tuningOnly is not null && !config.Resume ? (null, $"{tuningOnly} applies with --pretrained only.") : (config, null);
        }

        var extension = Path.GetExtension(path).ToLowerInvariant();
        if (extension == ".onnx")
        {
            return ResolveOnnx(config, given, path);
        }

        if (!WeightFiles.Contains(extension))
        {
            return (null, $"--pretrained '{path}': expected torchvision resnet18/resnet34 weights (.pth, .pt, .safetensors) or an ONNX image classifier (.onnx).");
        }

        if (BranchOptions.FirstOrDefault(given.Contains) is { } branchOption)
        {
            return (null, $"{branchOption} applies to an .onnx --pretrained: a torchvision ResNet's branches sit where DTSKD's ResNets put them.");
        }

        (string Model, int BaseWidth, int InputChannels) file;
        try
        {
            file = TorchvisionResNet.Describe(path);
        }
        catch (Exception ex) when (ex is FileNotFoundException or InvalidDataException)
        {
            return (null, $"--pretrained: {ex.Message}");
        }

        var mismatch = given.Contains("--classifier-type") && config.ClassifierType != file.Model ? $"--classifier-type {config.ClassifierType}"
            : given.Contains("--base-width") && config.BaseWidth != file.BaseWidth ? $"--base-width {config.BaseWidth}"
            : given.Contains("--stem") && config.Stem == "cifar" ? "--stem cifar"
            : null;
        if (mismatch is not null)
        {
            return (null, $"--pretrained '{path}' builds {file.Model} at width {file.BaseWidth} with the ImageNet stem; {mismatch} does not fit it (leave it out).");
        }

        if (config.ResolvedImageSize < 32)
        {
            return (null, $"--pretrained: the ImageNet stem takes images of 32 pixels and more; {config.DataType}'s are {config.ResolvedImageSize} (a folder of them with --image-size 32 or more works).");
        }

        return (WithRecipe(config with { Pretrained = Path.GetFullPath(path), ClassifierType = file.Model, BaseWidth = file.BaseWidth, Stem = "imagenet" }, given), null);
    }

    /// <summary>The options an ONNX file decides itself.</summary>
    private static readonly string[] FileDefinedOptions = ["--classifier-type", "--base-width", "--stem"];

    /// <summary>An ONNX network: the file is read now (so a broken one is refused before anything is written); the model is the file's.</summary>
    private static (ExperimentConfig? Config, string? Error) ResolveOnnx(ExperimentConfig config, IReadOnlySet<string> given, string path)
    {
        int? side;
        try
        {
            OnnxImport.RecommendedOptions(path);
            side = OnnxImport.InputSize(path);
        }
        catch (Exception ex) when (ex is FileNotFoundException or InvalidDataException)
        {
            return (null, $"--pretrained: {ex.Message}");
        }

        if (given.Contains("--branches") && given.Contains("--branch-points"))
        {
            return (null, "--branches counts the branches the default search attaches and --branch-points names them: give one of the two.");
        }

        var mismatch = FileDefinedOptions.FirstOrDefault(given.Contains);
        if (mismatch is not null)
        {
            return (null, $"--pretrained '{path}' is an ONNX network, whose layers are the file's; {mismatch} does not apply (leave it out).");
        }

        // A folder's images are decoded at the size the network was exported at, unless --image-size says otherwise.
        var sized = config.DataType == SampleData.Folder && !given.Contains("--image-size") && side is { } s ? config with { ImageSize = s } : config;
        return (WithRecipe(sized with { Pretrained = Path.GetFullPath(path), ClassifierType = OnnxModel }, given), null);
    }

    /// <summary>The fine-tuning recipe's numbers for the options the command line does not give.</summary>
    private static ExperimentConfig WithRecipe(ExperimentConfig config, IReadOnlySet<string> given)
    {
        var recipe = TrainerOptions.FineTuningRecipe(config.Epochs);
        return config with
        {
            Objective = DefaultsToCrossEntropy(config, given) ? FineTuningObjective : config.Objective,
            Lr = given.Contains("--lr") ? config.Lr : recipe.LearningRate,
            WeightDecay = given.Contains("--weight-decay") ? config.WeightDecay : recipe.WeightDecay,
            BatchSize = given.Contains("--batch-size") ? config.BatchSize : recipe.BatchSize,
            LrDecaySchedule = given.Contains("--lr-decay-schedule") ? config.LrDecaySchedule : [.. recipe.Milestones],
        };
    }

    /// <summary>
    /// Whether a new <c>--pretrained</c> run trains with cross-entropy: nothing asked for an objective. Fine-tuned on a
    /// small folder, every distilling objective measured stayed below cross-entropy (docs/pretrained.md).
    /// </summary>
    public static bool DefaultsToCrossEntropy(ExperimentConfig config, IReadOnlySet<string> given) =>
        config.Pretrained is not null && !config.Resume && !given.Contains("--objective") && !DistillationOptions.Any(given.Contains);

    /// <summary>The SHA-256 of a file, in lowercase hex.</summary>
    public static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream));
    }

    /// <summary>Refuses a --pretrained file that is not the one the run started from (where the run recorded it and the file is there).</summary>
    /// <exception cref="InvalidDataException">The file changed; the message names it and both hashes.</exception>
    public static void CheckUnchanged(ExperimentConfig config)
    {
        if (config.Pretrained is not { } path || config.PretrainedSha256 is not { } recorded || !File.Exists(path))
        {
            return;
        }

        var now = Sha256(path);
        if (!string.Equals(now, recorded, StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidDataException($"'{path}' is not the file the run started from (its SHA-256 is {now[..12]}..., the run recorded {recorded[..12]}...): restore it, or start a new run.");
        }
    }

    /// <summary>The run's model for the after-training commands: an ONNX run's network rebuilt from its file (the weights come from the checkpoint), else the named one.</summary>
    /// <exception cref="FileNotFoundException">An ONNX run's file is gone.</exception>
    /// <exception cref="InvalidDataException">The file is not the one the run started from.</exception>
    public static MultiBranchModule Create(ExperimentConfig config, int classes, int channels)
    {
        CheckUnchanged(config);
        if (config.ClassifierType != OnnxModel)
        {
            return MultiBranchModels.Create(config.ClassifierType, config.ModelOptions(classes, channels));
        }

        var path = config.Pretrained ?? throw new InvalidDataException("the run's config.json names no --pretrained network for its ONNX model.");
        return File.Exists(path)
            ? LoadOnnx(config, classes, channels).Model
            : throw new FileNotFoundException($"the run was trained from the ONNX network '{path}', which is gone: its layers are rebuilt from it (the weights come from the checkpoint).", path);
    }

    private static PretrainedNetwork LoadOnnx(ExperimentConfig config, int classes, int channels)
    {
        var (options, _) = OnnxImport.RecommendedOptions(config.Pretrained!);
        options.BranchPoints = config.BranchPoints;
        options.BranchCount = config.Branches ?? OnnxImportOptions.RecipeBranchCount;
        return OnnxImport.Load(config.Pretrained!, new MultiBranchModelOptions { ClassCount = classes, InputChannels = channels, NeckWidth = config.NeckWidth }, options);
    }

    /// <summary>Builds the run's network around the file's backbone and says what was loaded and what is new.</summary>
    /// <exception cref="InvalidDataException">The file no longer fits (changed since the run started).</exception>
    /// <exception cref="FileNotFoundException">The file is gone.</exception>
    public static PretrainedNetwork Load(ExperimentConfig config, int classes, int channels, IAnsiConsole console)
    {
        CheckUnchanged(config);
        var onnx = config.ClassifierType == OnnxModel;
        if (onnx)
        {
            console.MarkupLineInterpolated($"{OnnxImport.RecommendedOptions(config.Pretrained!).Normalisation}");
        }

        var network = onnx
            ? LoadOnnx(config, classes, channels)
            : TorchvisionResNet.Load(config.Pretrained!, new MultiBranchModelOptions { ClassCount = classes, InputChannels = channels, NeckWidth = config.NeckWidth });
        if (config.ResolvedImageSize < network.MinimumImageSize)
        {
            network.Model.Dispose();
            throw new InvalidDataException($"'{network.Source}' takes images of {network.MinimumImageSize} pixels and more (its total stride); these are {config.ResolvedImageSize}.");
        }

        if (network.RequiredImageSize is { } required && required != config.ResolvedImageSize)
        {
            network.Model.Dispose();
            throw new InvalidDataException($"'{network.Source}' takes {required}-pixel images only (a layer fixes the size it was exported at); these are {config.ResolvedImageSize}" +
                (config.DataType == SampleData.Folder ? $": give --image-size {required}, or leave --image-size out." : ": train it on a folder of images (--data-type folder), which are resized to it."));
        }

        var fresh = network.Initialised.Select(n => n.Split('.')[0]).Distinct().ToList();
        console.MarkupLineInterpolated(
            $"Pretrained: {network.Pretrained.Count} tensors of '{network.Source}' (the backbone{(network.Pretrained.Contains("fc.weight") ? " and its classifier" : string.Empty)}); new: {network.Initialised.Count} tensors ({string.Join(", ", fresh)}).");
        foreach (var note in network.Notes)
        {
            console.MarkupLineInterpolated($"  note: {note}");
        }

        return network;
    }

    /// <summary>The trainer's fine-tuning: the pretrained parameters at the factor, the stages frozen, the warm-up.</summary>
    public static FineTuning Tuning(ExperimentConfig config, PretrainedNetwork network) => new()
    {
        PretrainedParameters = [.. network.Pretrained],
        FrozenParameters = network.ParametersThrough(config.Freeze),
        FreezeBatchNorm = config.FreezeBn,
        BackboneLearningRateFactor = config.BackboneLrFactor,
        WarmupEpochs = config.WarmupEpochs,
    };
}
