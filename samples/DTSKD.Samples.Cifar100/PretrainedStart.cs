using System.CommandLine;
using DTSKD.Core.Interop;
using DTSKD.Core.Models;
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
    private static readonly string[] TuningOptions = ["--freeze", "--freeze-bn", "--backbone-lr-factor", "--warmup-epochs"];

    /// <summary>The command line's fine-tuning options.</summary>
    internal sealed class Options
    {
        public Option<string?> Pretrained { get; } = new("--pretrained")
        {
            Description = "Start from torchvision resnet18/resnet34 ImageNet weights (.pth or .safetensors; docs/pretrained.md): the model, width and ImageNet stem come from the file, " +
                          "the classifier, neck and branches are new, the images are normalised as ImageNet's, and the fine-tuning recipe's lr 0.01, weight decay 1e-4 and batch 32 apply unless given.",
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
            WarmupEpochs.Validators.Add(r =>
            {
                if (r.GetValueOrDefault<int>() < 0)
                {
                    r.AddError("--warmup-epochs must be 0 or more.");
                }
            });
        }

        public IEnumerable<Option> All => [Pretrained, Freeze, FreezeBn, BackboneLrFactor, WarmupEpochs];

        /// <summary>The options' values on top of <paramref name="config"/>.</summary>
        public ExperimentConfig Read(ParseResult result, ExperimentConfig config) => config with
        {
            Pretrained = result.GetValue(Pretrained), Freeze = result.GetValue(Freeze)!, FreezeBn = result.GetValue(FreezeBn),
            BackboneLrFactor = result.GetValue(BackboneLrFactor), WarmupEpochs = result.GetValue(WarmupEpochs),
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
        var tuningOnly = TuningOptions.FirstOrDefault(given.Contains);
        if (config.Pretrained is not { } path)
        {
            return tuningOnly is not null && !config.Resume ? (null, $"{tuningOnly} applies with --pretrained only.") : (config, null);
        }

        var extension = Path.GetExtension(path).ToLowerInvariant();
        if (extension == ".onnx")
        {
            return (null, $"--pretrained '{path}': ONNX backbones are not supported yet; give torchvision resnet18/resnet34 weights (.pth or .safetensors).");
        }

        if (!WeightFiles.Contains(extension))
        {
            return (null, $"--pretrained '{path}': expected torchvision resnet18/resnet34 weights in a .pth, .pt or .safetensors file.");
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

        var recipe = TrainerOptions.FineTuningRecipe(config.Epochs);
        return (config with
        {
            Pretrained = Path.GetFullPath(path),
            ClassifierType = file.Model,
            BaseWidth = file.BaseWidth,
            Stem = "imagenet",
            Lr = given.Contains("--lr") ? config.Lr : recipe.LearningRate,
            WeightDecay = given.Contains("--weight-decay") ? config.WeightDecay : recipe.WeightDecay,
            BatchSize = given.Contains("--batch-size") ? config.BatchSize : recipe.BatchSize,
            LrDecaySchedule = given.Contains("--lr-decay-schedule") ? config.LrDecaySchedule : [.. recipe.Milestones],
        }, null);
    }

    /// <summary>Builds the run's network around the file's backbone and says what was loaded and what is new.</summary>
    /// <exception cref="InvalidDataException">The file no longer fits (changed since the run started).</exception>
    /// <exception cref="FileNotFoundException">The file is gone.</exception>
    public static PretrainedNetwork Load(ExperimentConfig config, int classes, int channels, IAnsiConsole console)
    {
        var network = TorchvisionResNet.Load(config.Pretrained!, new MultiBranchModelOptions { ClassCount = classes, InputChannels = channels, NeckWidth = config.NeckWidth });
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
