using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// A training objective over all heads of a multi-branch model. The trainer knows only this contract, so DTSKD
/// (<see cref="DualTeacherLoss"/>), baselines (<see cref="CrossEntropyObjective"/>) and your own objectives run on the
/// same engine.
/// </summary>
public interface IMultiBranchObjective
{
    /// <summary>A short name for logs, reports and checkpoints (a checkpoint resumes only with an objective of the same name).</summary>
    string Name { get; }

    /// <summary>Computes the loss of one training batch (an objective with per-sample memory also updates it here).</summary>
    /// <param name="output">The model's output for the batch.</param>
    /// <param name="labels">Class labels, [batch].</param>
    /// <param name="indices">Dataset indices of the batch's samples, [batch].</param>
    /// <param name="epoch">The 0-based epoch.</param>
    /// <param name="totalEpochs">The run's number of epochs.</param>
    /// <returns>The total, its named terms and scalars to log; the caller disposes it.</returns>
    MultiBranchLossResult Compute(MultiBranchOutput output, Tensor labels, Tensor indices, int epoch, int totalEpochs);

    /// <summary>Writes whatever state the objective accumulates during training (for checkpoints).</summary>
    /// <param name="stream">A writable stream; it is left open.</param>
    void SaveState(Stream stream);

    /// <summary>Restores what <see cref="SaveState"/> wrote.</summary>
    /// <param name="stream">A readable stream; it is left open.</param>
    void LoadState(Stream stream);
}
