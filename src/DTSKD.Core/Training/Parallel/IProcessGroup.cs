using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// The processes (ranks) that train one model together, data-parallel: each trains on its own share of every epoch and
/// the gradients are averaged every step. The trainer calls it in two places only: the epoch order (which samples this
/// rank trains) and the step (gradients averaged before the optimizer steps); <see cref="SingleProcessGroup"/>, the
/// default, is one rank and does nothing.
/// </summary>
/// <remarks>
/// Every rank must make the same calls in the same order with tensors of the same shape and type, as MPI and NCCL
/// require. An implementation that cannot complete a call (a rank died, a timeout) throws rather than waits forever.
/// </remarks>
public interface IProcessGroup
{
    /// <summary>This process's rank, 0 to <see cref="WorldSize"/> - 1; rank 0 writes logs and checkpoints.</summary>
    int Rank { get; }

    /// <summary>How many processes train the model.</summary>
    int WorldSize { get; }

    /// <summary>What carries the collectives, for logs (for example "one process", or "MPI (Open MPI 4.1.4), 2 ranks").</summary>
    string Description { get; }

    /// <summary>Replaces <paramref name="values"/> on every rank with the sum or the mean over the ranks, in place.</summary>
    /// <param name="values">A contiguous float32 or float64 tensor, of the same shape on every rank.</param>
    /// <param name="operation">Sum or average.</param>
    void AllReduce(Tensor values, ReduceOperation operation);

    /// <summary>Replaces <paramref name="values"/> on every rank with rank <paramref name="root"/>'s, in place.</summary>
    /// <param name="values">A contiguous tensor, of the same shape and type on every rank.</param>
    /// <param name="root">The rank whose values everyone receives.</param>
    void Broadcast(Tensor values, int root);

    /// <summary>Returns once every rank has called it.</summary>
    void Barrier();

    /// <summary>Every rank's <paramref name="value"/>, indexed by rank (small values: counts, checks that ranks agree).</summary>
    /// <param name="value">This rank's value.</param>
    double[] AllGather(double value);
}
