using DTSKD.Core.Data;
using DTSKD.Core.Images;
using DTSKD.Core.Interop;
using DTSKD.Core.Models;
using DTSKD.Core.Onnx.Import;
using DTSKD.Core.Training;

namespace DTSKD.Benchmarks.Study;

/// <summary>A study that starts every run from a pretrained network (<c>--pretrained</c>): torchvision weights or an ONNX classifier.</summary>
public static class StudyPretrained
{
    /// <summary>The run's network around the file's backbone, for the data's classes and channels.</summary>
    public static PretrainedNetwork Load(StudySettings s, int classes, int channels)
    {
        var path = s.Pretrained!;
        var model = new MultiBranchModelOptions { ClassCount = classes, InputChannels = channels, NeckWidth = s.NeckWidth };
        if (!path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
        {
            return TorchvisionResNet.Load(path, model);
        }

        var (options, _) = OnnxImport.RecommendedOptions(path);
        options.BranchPoints = s.BranchPoints is { Length: > 0 } points ? points : null;
        return OnnxImport.Load(path, model, options);
    }

    /// <summary>The data's augmentation with the network's normalisation in place of the data's.</summary>
    public static IBatchAugmentation Preprocessing(StudySettings s, PretrainedNetwork network) => s.DataType == "folder"
        ? new ImageFolderOptions { ImageSize = s.ImageSize ?? 32, Channels = s.Channels }.AugmentationWith(network.Mean, network.Std)
        : new PadCropFlip(network.Mean, network.Std, padding: 4);

    /// <summary>The trainer's fine-tuning of the network, from the study's settings.</summary>
    public static FineTuning Tuning(StudySettings s, PretrainedNetwork network) => new()
    {
        PretrainedParameters = [.. network.Pretrained],
        FrozenParameters = network.ParametersThrough(s.Freeze ?? "none"),
        FreezeBatchNorm = s.FreezeBn,
        BackboneLearningRateFactor = s.BackboneLrFactor ?? FineTuning.RecipeBackboneFactor,
        WarmupEpochs = s.WarmupEpochs ?? FineTuning.RecipeWarmupEpochs,
    };
}
