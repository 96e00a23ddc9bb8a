using DTSKD.Core;
using DTSKD.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100;

/// <summary>How the command line's values become the library's options.</summary>
public static class SampleRecipe
{
    /// <summary>The objective of <c>--objective</c>, for the DTSKD family started from the release's loss flags.</summary>
    /// <exception cref="ArgumentException">The branch weights do not fit the model's branches (named).</exception>
    public static IMultiBranchObjective Objective(ExperimentConfig config, IMultiBranchModel model, int sampleCount, Device device) =>
        ObjectiveSpec.Parse(config.Objective).Create(model, sampleCount, device, LossOptions(config, device, model.BranchCount));

    /// <summary>
    /// The note for a run of the paper's objective, left at its default, on fewer epochs than the paper's: on small sets
    /// its T² form fell below cross-entropy at every shorter budget measured (docs/results.md). Null when the objective or
    /// a loss flag was chosen, when resuming, and on the paper's budget.
    /// </summary>
    public static string? ShortBudgetNote(ExperimentConfig config, IReadOnlySet<string> given) =>
        config.Objective == ObjectiveSpec.Recipe && config.Epochs < ExperimentConfig.RecipeEpochs && !config.Resume
            && !given.Contains("--objective") && !PretrainedStart.DistillationOptions.Any(given.Contains)
            ? $"--epochs {config.Epochs} with the paper's objective, which is meant for {ExperimentConfig.RecipeEpochs}: on small sets its T² form fell below " +
              "cross-entropy at every shorter budget measured (docs/results.md#the-training-budget-1000-images-40-100-and-200-epochs). " +
              "Compare --objective \"dtskd[t2=off]\" and --objective ce on your data."
            : null;

    /// <summary>The loss options: the release's flags, one to one, for a model of <paramref name="branchCount"/> branches.</summary>
    /// <exception cref="ArgumentException">The branch weights do not fit the model's branches (named).</exception>
    public static DualTeacherLossOptions LossOptions(ExperimentConfig config, Device device, int branchCount) => new()
    {
        BackboneWeight = config.BackboneWeight,
        BranchWeights = BranchWeights(config, branchCount),
        HistoricalWeight = config.CeWeight,
        StructuralWeight = config.KdWeight,
        Temperature = config.Temperature,
        UseHistoricalTeacher = config.Hskd,
        TeachersFromEpoch = config.TeachersFromEpoch,
        DetachBackbone = config.DetachBranches,

        // Labels and indices come from validated readers and the trainer's sampler: on a GPU, skip the per-step
        // checks that would wait for the device.
        ValidateInputs = device.type == DeviceType.CPU,
        Schedule = config.CoeffDecay == "cos"
            ? CoefficientSchedule.Cosine(config.CosMax, config.CosMin)
            : CoefficientSchedule.Linear(config.AlphaT),
    };

    /// <summary>
    /// The release's three branch weights for a network of three branches; for another count (an ONNX network's
    /// --branches or --branch-points) the recipe's weight on every branch, the three flags then left at it.
    /// </summary>
    /// <exception cref="ArgumentException">A weight flag was changed for a network that has not three branches.</exception>
    public static IReadOnlyList<double>? BranchWeights(ExperimentConfig config, int branchCount)
    {
        double[] flags = [config.B1Weight, config.B2Weight, config.B3Weight];
        if (branchCount == 3)
        {
            return flags;
        }

        return flags.All(w => w == DualTeacherLossOptions.RecipeBranchWeight)
            ? null
            : throw new ArgumentException($"--b1-weight, --b2-weight and --b3-weight weigh three branches; this network has {branchCount}: leave them at {DualTeacherLossOptions.RecipeBranchWeight.ToString(System.Globalization.CultureInfo.InvariantCulture)} (every branch then takes it).");
    }

    /// <summary>The trainer's options: the recipe's flags, one to one, with checkpoints in the run folder.</summary>
    public static TrainerOptions TrainerOptions(ExperimentConfig config, Device device, TrainingPrecision precision, string runFolder) => new()
    {
        Epochs = config.Epochs,
        BatchSize = config.BatchSize,
        EvalBatchSize = config.EvalBatchSize,
        LearningRate = config.Lr,
        Momentum = config.Momentum,
        WeightDecay = config.WeightDecay,
        Milestones = config.LrDecaySchedule,
        Gamma = config.LrDecayRate,
        Seed = config.Seed,
        BestAfterEpoch = config.BestAfter,
        LogInterval = config.LogInterval,
        Device = device,
        Precision = precision,
        AllowTf32 = config.Tf32,
        CheckpointDirectory = runFolder,
    };

    /// <summary>
    /// The number format. <c>auto</c> is float32 on CUDA (with TF32; the half formats are opt-in there until measured on
    /// a GPU), bfloat16 on a CPU that computes it natively (measured in docs/results.md: the accuracy of float32 within
    /// the seed spread, 2-3 times the speed), and float32 on other CPUs.
    /// </summary>
    public static TrainingPrecision Precision(ExperimentConfig config, Device device) => config.Precision switch
    {
        "bf16" => TrainingPrecision.BFloat16,
        "fp16" => TrainingPrecision.Float16,
        "auto" when device.type == DeviceType.CPU && CpuFeatures.NativeBFloat16 => TrainingPrecision.BFloat16,
        _ => TrainingPrecision.Float32,
    };
}
