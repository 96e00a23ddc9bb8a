using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// The training recipe. The defaults are the paper's CIFAR-100 ResNet-18 recipe: SGD with Nesterov momentum
/// 0.9, lr 0.1, weight decay 5e-4 on all parameters, batch 128, 300 epochs, lr × 0.1 at epochs 150 and 225,
/// seed 27, best accuracy counted from epoch 200.
/// </summary>
public sealed class TrainerOptions
{
    /// <summary>The number of epochs E.</summary>
    public int Epochs { get; set; } = 300;

    /// <summary>Training batch size.</summary>
    public int BatchSize { get; set; } = 128;

    /// <summary>Evaluation batch size (only memory depends on it).</summary>
    public int EvalBatchSize { get; set; } = 500;

    /// <summary>The initial learning rate.</summary>
    public double LearningRate { get; set; } = 0.1;

    /// <summary>SGD momentum.</summary>
    public double Momentum { get; set; } = 0.9;

    /// <summary>Whether SGD uses Nesterov momentum.</summary>
    public bool Nesterov { get; set; } = true;

    /// <summary>L2 weight decay, applied to every parameter as in the reference.</summary>
    public double WeightDecay { get; set; } = 5e-4;

    /// <summary>0-based epochs at which the learning rate is multiplied by <see cref="Gamma"/> (from that epoch on).</summary>
    public IReadOnlyList<int> Milestones { get; set; } = [150, 225];

    /// <summary>The learning-rate factor at each milestone.</summary>
    public double Gamma { get; set; } = 0.1;

    /// <summary>The seed of every random draw the trainer makes (shuffling, crops, flips). Seed model initialisation yourself with <c>torch.manual_seed</c>.</summary>
    public long Seed { get; set; } = 27;

    /// <summary>The best backbone top-1 is taken over epochs with 0-based index &gt;= this (200 in the recipe: epochs 201..300).</summary>
    public int BestAfterEpoch { get; set; } = 200;

    /// <summary>Whether the last, smaller training batch of an epoch is dropped.</summary>
    public bool DropLast { get; set; }

    /// <summary>Progress is reported, and the loss checked for NaN/Inf, every this many steps (and at each epoch's end).</summary>
    public int LogInterval { get; set; } = 50;

    /// <summary>The training device (CPU when null). The trainer moves the model and the datasets there.</summary>
    public Device? Device { get; set; }

    /// <summary>The number format of the forward and backward passes (float32 master weights and loss either way).</summary>
    public TrainingPrecision Precision { get; set; } = TrainingPrecision.Float32;

    /// <summary>On CUDA devices, whether float32 matrix products and convolutions may use TF32 (as PyTorch's default for cuDNN). Ignored on CPUs.</summary>
    public bool AllowTf32 { get; set; } = true;

    /// <summary>A folder for <c>last.ckpt</c> (every epoch, and on cancellation) and <c>best.ckpt</c>; null for none.</summary>
    public string? CheckpointDirectory { get; set; }

    /// <summary>The learning rate of a 0-based epoch under the multi-step schedule.</summary>
    /// <param name="epoch">The 0-based epoch.</param>
    public double LearningRateAt(int epoch) => LearningRate * Math.Pow(Gamma, Milestones.Count(m => epoch >= m));

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
    }

    private static void Positive(int value, string name)
    {
        if (value <= 0)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be greater than 0.");
        }
    }
}
