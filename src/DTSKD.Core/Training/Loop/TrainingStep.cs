using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>One training step as <see cref="TrainerCallback.OnStepEnd"/> sees it. Its tensors are freed when the hook returns.</summary>
public sealed record TrainingStep
{
    /// <summary>Creates the record.</summary>
    /// <param name="epoch">The 0-based epoch.</param>
    /// <param name="step">The 0-based step within the epoch.</param>
    /// <param name="stepsPerEpoch">Steps in the epoch.</param>
    /// <param name="learningRate">The learning rate the step used.</param>
    /// <param name="output">The model's output for the batch (after the step's forward pass).</param>
    /// <param name="loss">The objective's result: total, named terms and scalars.</param>
    /// <param name="labels">The batch's labels, [batch].</param>
    /// <param name="indices">The batch's sample indices, [batch].</param>
    internal TrainingStep(int epoch, int step, int stepsPerEpoch, double learningRate, MultiBranchOutput output, MultiBranchLossResult loss, Tensor labels, Tensor indices)
    {
        Epoch = epoch;
        Step = step;
        StepsPerEpoch = stepsPerEpoch;
        LearningRate = learningRate;
        Output = output;
        Loss = loss;
        Labels = labels;
        Indices = indices;
    }

    /// <summary>The 0-based epoch.</summary>
    public int Epoch { get; }

    /// <summary>The 0-based step within the epoch.</summary>
    public int Step { get; }

    /// <summary>Steps in the epoch.</summary>
    public int StepsPerEpoch { get; }

    /// <summary>The learning rate the step used.</summary>
    public double LearningRate { get; }

    /// <summary>The model's output for the batch (after the step's forward pass).</summary>
    public MultiBranchOutput Output { get; }

    /// <summary>The objective's result: total, named terms and scalars.</summary>
    public MultiBranchLossResult Loss { get; }

    /// <summary>The batch's labels, [batch].</summary>
    public Tensor Labels { get; }

    /// <summary>The batch's sample indices, [batch].</summary>
    public Tensor Indices { get; }
}
