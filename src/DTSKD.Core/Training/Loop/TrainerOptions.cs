using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// The training recipe. The defaults are the paper's CIFAR-100 ResNet-18 recipe: SGD with Nesterov momentum 0.9,
/// lr 0.1, weight decay 5e-4 on all parameters, batch 128, 300 epochs, lr × 0.1 at epochs 150 and 225 (MultiStepLR),
/// seed 27, best accuracy counted over the last third of the run.
/// </summary>
public sealed class TrainerOptions
{
    /// <summary>The number of epochs E.</summary>
    public int Epochs { get; set; } = 300;

    /// <summary>Training batch size.</summary>
    public int BatchSize { get; set; } = 128;

    /// <summary>Evaluation batch size (only memory depends on it).</summary>
    public int EvalBatchSize { get; set; } = 500;

    /// <summary>The initial learning rate of the default optimizer.</summary>
    public double LearningRate { get; set; } = 0.1;

    /// <summary>The default optimizer's SGD momentum.</summary>
    public double Momentum { get; set; } = 0.9;

    /// <summary>Whether the default optimizer uses Nesterov momentum.</summary>
    public bool Nesterov { get; set; } = true;

    /// <summary>The default optimizer's L2 weight decay, applied to every parameter as in the reference.</summary>
    public double WeightDecay { get; set; } = 5e-4;

    /// <summary>0-based epochs at which the default scheduler multiplies the learning rate by <see cref="Gamma"/> (from that epoch on).</summary>
    public IReadOnlyList<int> Milestones { get; set; } = [150, 225];

    /// <summary>The default scheduler's learning-rate factor at each milestone.</summary>
    public double Gamma { get; set; } = 0.1;

    /// <summary>
    /// Builds the optimizer over the parameters it is given; null (default) for the recipe: SGD with <see cref="LearningRate"/>,
    /// <see cref="Momentum"/>, <see cref="Nesterov"/> and <see cref="WeightDecay"/>. Any TorchSharp optimizer works, in every
    /// precision (its state goes into checkpoints). In the half precisions the parameters it is given are the float32 master
    /// weights of the model's half ones.
    /// </summary>
    public Func<IReadOnlyList<Parameter>, optim.Optimizer>? Optimizer { get; set; }

    /// <summary>
    /// Builds the learning-rate scheduler for the optimizer; null (default) for MultiStepLR with <see cref="Milestones"/> and
    /// <see cref="Gamma"/>. It is stepped once per epoch, or once per step with <see cref="SchedulerInterval"/>. On resume it is
    /// rebuilt and stepped to where the run stopped, which reproduces any scheduler whose rate depends only on its step count.
    /// </summary>
    public Func<optim.Optimizer, optim.lr_scheduler.LRScheduler>? Scheduler { get; set; }

    /// <summary>Whether <see cref="Scheduler"/> is stepped after every epoch (default) or after every training step.</summary>
    public SchedulerInterval SchedulerInterval { get; set; } = SchedulerInterval.Epoch;

    /// <summary>The seed of every random draw the trainer makes (shuffling, crops, flips). Seed model initialisation yourself with <c>torch.manual_seed</c>.</summary>
    public long Seed { get; set; } = 27;

    /// <summary>
    /// The sample indices of each 0-based epoch, in the order they are trained (an int64 vector on the CPU, values in
    /// 0..N-1; batches are consecutive slices of <see cref="BatchSize"/>); null (default) for a permutation of 0..N-1 seeded by
    /// (<see cref="Seed"/>, epoch). It must give the same order for the same epoch every time, so runs resume exactly.
    /// </summary>
    public Func<int, Tensor>? EpochOrder { get; set; }

    /// <summary>
    /// The best backbone top-1 is taken over epochs with 0-based index &gt;= this; null (default) for two thirds of the run,
    /// as the release's 200 of 300 (epochs 201..300).
    /// </summary>
    public int? BestAfterEpoch { get; set; }

    /// <summary>Whether the last, smaller training batch of an epoch is dropped.</summary>
    public bool DropLast { get; set; }

    /// <summary>Progress is reported, and the loss checked for NaN/Inf, every this many steps (and at each epoch's end).</summary>
    public int LogInterval { get; set; } = 50;

    /// <summary>The training device (CPU when null). The trainer moves the model and the datasets there.</summary>
    public Device? Device { get; set; }

    /// <summary>The number format of the forward and backward passes.</summary>
    public TrainingPrecision Precision { get; set; } = TrainingPrecision.Float32;

    /// <summary>On CUDA devices, whether float32 matrix products and convolutions may use TF32 (as PyTorch's default for cuDNN) while the trainer runs. Ignored on CPUs.</summary>
    public bool AllowTf32 { get; set; } = true;

    /// <summary>
    /// Whether batches and convolution weights are laid out channels-last (the optimizer still steps contiguous float32
    /// masters, so checkpoints do not depend on it). Off, and internal: for the benchmarks (see <see cref="InputFormat"/>).
    /// </summary>
    internal bool ChannelsLast { get; set; }

    /// <summary>
    /// The processes that train the model together (data parallelism); null (default) for one process. Each rank trains its
    /// own shard of every epoch with <see cref="BatchSize"/> per step, and the gradients are averaged over the ranks every
    /// step before the optimizer steps (<see cref="MpiProcessGroup"/> for an MPI job).
    /// </summary>
    /// <remarks>
    /// As DistributedDataParallel: rank 0's weights and buffers reach every rank when the run starts, and its batch norms'
    /// running statistics before every step (each rank normalises its own batch). An epoch's training metrics are summed
    /// over the ranks; every rank evaluates the whole test set with the same weights, so every rank reports the same
    /// metrics; only rank 0 logs and writes <see cref="CheckpointDirectory"/>, whose checkpoints hold every rank's history
    /// rows (<see cref="Trainer.SaveCheckpoint"/>). A stop asked of one rank (a cancelled token) stops every rank at the
    /// same step.
    /// </remarks>
    public IProcessGroup? ProcessGroup { get; set; }

    /// <summary>
    /// With several ranks (<see cref="ProcessGroup"/>), whether every batch norm normalises over all ranks' batches together
    /// (as PyTorch's <c>SyncBatchNorm</c>) rather than each rank's own (as DistributedDataParallel, and the release). Off by
    /// default. Each batch norm then costs one small all-reduce forward and one backward per step; worth it when each rank's
    /// batch is too small for its own statistics. Ignored with one rank; batch norms frozen by <see cref="FineTuning"/> stay frozen.
    /// </summary>
    public bool SyncBatchNorm { get; set; }

    /// <summary>Training a pretrained backbone (learning-rate factor, frozen stages, frozen batch norms, warm-up); null (default) to train every parameter alike.</summary>
    public FineTuning? FineTuning { get; set; }

    /// <summary>A folder for <c>last.ckpt</c> (every epoch, and on cancellation) and <c>best.ckpt</c>; null for none.</summary>
    public string? CheckpointDirectory { get; set; }

    /// <summary>
    /// What identifies the data the run trains and evaluates on (for a folder, a hash of its file list, sizes and times);
    /// null (default) for none. Every checkpoint records it (<see cref="CheckpointSummary.DataKey"/>), and
    /// <see cref="Trainer.LoadCheckpoint"/> refuses a checkpoint written with another key: with equal sample counts, a
    /// changed data set would hand the historical teacher's rows to other samples.
    /// </summary>
    public string? DataKey { get; set; }

    /// <summary>The 0-based epoch from which the best top-1 is taken: <see cref="BestAfterEpoch"/>, or two thirds of <see cref="Epochs"/>.</summary>
    internal int ResolvedBestAfterEpoch => BestAfterEpoch ?? LastThirdStart(Epochs);

    /// <summary>
    /// The 0-based epoch from which the recipe counts the best top-1 of a run of <paramref name="epochs"/> epochs: two thirds
    /// of the way (epoch index 200 of 300, as the release), so the best is taken over the last third.
    /// </summary>
    /// <param name="epochs">The run's number of epochs.</param>
    public static int LastThirdStart(int epochs) => epochs * 2 / 3;

    /// <summary>
    /// The recipe's learning-rate milestones moved to a run of <paramref name="epochs"/> epochs at the same fractions
    /// (150 and 225 of 300 are a half and three quarters), for shorter studies that keep the recipe's shape.
    /// </summary>
    /// <param name="epochs">The run's number of epochs.</param>
    public static int[] ScaledMilestones(int epochs)
    {
        var recipe = new TrainerOptions();
        return [.. recipe.Milestones.Select(m => (int)((long)m * epochs / recipe.Epochs))];
    }

    /// <summary>
    /// The recipe for fine-tuning a pretrained network for <paramref name="epochs"/> epochs: SGD with Nesterov momentum 0.9 at
    /// lr 0.01 for the new heads (the pretrained parameters at <see cref="FineTuning.RecipeBackboneFactor"/> of it), weight
    /// decay 1e-4, batch 32, the recipe's milestones scaled to the run; set <see cref="FineTuning"/> for the network.
    /// </summary>
    /// <param name="epochs">The run's number of epochs.</param>
    public static TrainerOptions FineTuningRecipe(int epochs) => new()
    {
        Epochs = epochs,
        LearningRate = 0.01,
        WeightDecay = 1e-4,
        BatchSize = 32,
        Milestones = ScaledMilestones(epochs),
    };

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first option out of range.</summary>
    public void Validate()
    {
        Positive(Epochs, nameof(Epochs));
        Positive(BatchSize, nameof(BatchSize));
        Positive(EvalBatchSize, nameof(EvalBatchSize));
        Positive(LogInterval, nameof(LogInterval));
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate))
        {
            throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "LearningRate must be a finite number > 0.");
        }

        if (!(Momentum >= 0 && Momentum < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(Momentum), Momentum, "Momentum must be in [0, 1).");
        }

        if (Nesterov && Momentum == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(Momentum), Momentum, "Nesterov momentum needs Momentum > 0.");
        }

        if (!(WeightDecay >= 0) || double.IsInfinity(WeightDecay))
        {
            throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "WeightDecay must be a finite number >= 0.");
        }

        if (!(Gamma > 0) || double.IsInfinity(Gamma))
        {
            throw new ArgumentOutOfRangeException(nameof(Gamma), Gamma, "Gamma must be a finite number > 0.");
        }

        ArgumentNullException.ThrowIfNull(Milestones, nameof(Milestones));
        if (Milestones.Any(m => m < 0))
        {
            throw new ArgumentOutOfRangeException(nameof(Milestones), string.Join(",", Milestones), "Milestones must be 0-based epochs >= 0.");
        }

        if (BestAfterEpoch < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(BestAfterEpoch), BestAfterEpoch, "BestAfterEpoch must be >= 0.");
        }

        FineTuning?.Validate();
        if (FineTuning is { BackboneLearningRateFactor: not 1.0 } && Optimizer is not null)
        {
            throw new ArgumentOutOfRangeException(
                nameof(FineTuning), FineTuning.BackboneLearningRateFactor,
                "FineTuning.BackboneLearningRateFactor sets the default optimizer's groups; with a custom Optimizer set it to 1 and build the groups there (it receives the trainable parameters).");
        }

    }

    /// <summary>A copy, so a trainer is not changed by later edits of the options it was built with.</summary>
    internal TrainerOptions Clone()
    {
        var copy = (TrainerOptions)MemberwiseClone();
        copy.Milestones = Milestones is null ? null! : [.. Milestones];
        copy.FineTuning = FineTuning?.Clone();
        return copy;
    }

    /// <summary>The recipe's optimizer (SGD) over the parameters.</summary>
    internal optim.Optimizer CreateDefaultOptimizer(IReadOnlyList<Parameter> parameters) =>
        optim.SGD(parameters, LearningRate, Momentum, dampening: 0, WeightDecay, Nesterov);

    /// <summary>The scheduler of <see cref="Scheduler"/>, or the recipe's MultiStepLR.</summary>
    internal optim.lr_scheduler.LRScheduler CreateScheduler(optim.Optimizer optimizer) =>
        Scheduler?.Invoke(optimizer) ?? optim.lr_scheduler.MultiStepLR(optimizer, [.. Milestones], Gamma);

    private static void Positive(int value, string name)
    {
        if (value <= 0)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be greater than 0.");
        }
    }
}
