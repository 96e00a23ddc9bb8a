using DTSKD.Core.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>What a trainer is given, checked before anything is changed: the options, the data against the model and the augmentation, and whether a step of the batch fits in memory.</summary>
internal static class TrainerInputs
{
    /// <summary>Checks the trainer's arguments; returns a validated copy of the options.</summary>
    /// <exception cref="ArgumentException">What does not fit, naming it.</exception>
    public static TrainerOptions Check(IMultiBranchModel model, IMultiBranchObjective objective, IImageSource train, IImageSource test, IBatchAugmentation preprocessing, TrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(objective);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(preprocessing);
        ArgumentNullException.ThrowIfNull(options);
        options = options.Clone();
        options.Validate();
        if (model is not nn.Module)
        {
            throw new ArgumentException($"The model must be a TorchSharp module (nn.Module<Tensor, MultiBranchOutput>); {model.GetType().Name} is not.", nameof(model));
        }

        if (train.Shape.Channels != preprocessing.Mean.Count || test.Shape.Channels != train.Shape.Channels)
        {
            throw new ArgumentException(
                $"The preprocessing normalises {preprocessing.Mean.Count} channels; the training set has {train.Shape.Channels} and the test set {test.Shape.Channels}.",
                nameof(preprocessing));
        }

        if (train.ClassCount != test.ClassCount || model.ClassCount != train.ClassCount)
        {
            throw new ArgumentException(
                $"The model predicts {model.ClassCount} classes; the training set has {train.ClassCount} and the test set {test.ClassCount}.", nameof(train));
        }

        if (options.BatchSize > train.Count)
        {
            throw new ArgumentException(
                $"BatchSize {options.BatchSize} is larger than the training set ({train.Count} samples); at most {train.Count}.", nameof(options));
        }

        CheckStepMemory(model, preprocessing.OutputShape(train.Shape), options, options.Device ?? CPU);
        return options;
    }

    /// <summary>Refuses a batch whose training step cannot fit in the memory left (CPU devices, where the system says how much that is).</summary>
    private static void CheckStepMemory(IMultiBranchModel model, ImageShape input, TrainerOptions options, Device device)
    {
        if (StepMemory.AvailableBytes(device) is not { } available || model.parameters().Any(p => p.device_type != DeviceType.CPU))
        {
            return;
        }

        var perSample = StepMemory.PerSampleBytes(model, input.Channels, input.Height, input.Width, PrecisionPolicy.WeightTypeOf(options.Precision));
        var step = StepMemory.StepBytes(perSample, options.BatchSize);
        if (step > available)
        {
            var fits = Math.Max(1, (int)(available / (double)StepMemory.StepBytes(perSample, 1)));
            throw new ArgumentException(
                $"BatchSize {options.BatchSize} needs about {StepMemory.Gigabytes(step)} for a training step of {input} images " +
                $"with this model; {StepMemory.Gigabytes(available)} of memory is available. Use a batch of at most about {fits}.", nameof(options));
        }
    }
}
