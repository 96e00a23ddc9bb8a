using static TorchSharp.torch;

namespace DTSKD.Core.Data;

/// <summary>
/// Splits the indices 0..N-1 into batches, in an order shuffled anew every epoch. The order of epoch e is a
/// function of (seed, e) alone, so a resumed run sees the same batches.
/// </summary>
public sealed class BatchSampler
{
    private const ulong Stream = 0x5A3D_0001;

    /// <summary>Creates a sampler.</summary>
    /// <param name="count">N, the number of samples.</param>
    /// <param name="batchSize">Samples per batch.</param>
    /// <param name="seed">The run's seed.</param>
    /// <param name="shuffle">False to keep the order 0..N-1 (evaluation).</param>
    /// <param name="dropLast">True to drop a last, smaller batch.</param>
    public BatchSampler(int count, int batchSize, long seed, bool shuffle = true, bool dropLast = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (dropLast && batchSize > count)
        {
            throw new ArgumentException($"With dropLast, batchSize ({batchSize}) must not exceed the number of samples ({count}).", nameof(batchSize));
        }

        Count = count;
        BatchSize = batchSize;
        Seed = seed;
        Shuffle = shuffle;
        DropLast = dropLast;
    }

    /// <summary>N.</summary>
    internal int Count { get; }

    /// <summary>Samples per batch.</summary>
    internal int BatchSize { get; }

    /// <summary>The run's seed.</summary>
    internal long Seed { get; }

    /// <summary>Whether each epoch is shuffled.</summary>
    internal bool Shuffle { get; }

    /// <summary>Whether a last, smaller batch is dropped.</summary>
    internal bool DropLast { get; }

    /// <summary>Batches per epoch.</summary>
    public int StepsPerEpoch => DropLast ? Count / BatchSize : (Count + BatchSize - 1) / BatchSize;

    /// <summary>The order of an epoch: int64 [N] on the CPU (the caller disposes it).</summary>
    /// <param name="epoch">The 0-based epoch.</param>
    public Tensor Order(int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        if (!Shuffle)
        {
            return arange(Count, ScalarType.Int64);
        }

        using var generator = new Generator(SeedSequence.Derive(Seed, epoch, 0, Stream));
        return randperm(Count, ScalarType.Int64, generator: generator);
    }

    /// <summary>The batches of an epoch, from a given step on; each is int64 [batch] on the CPU.</summary>
    /// <param name="epoch">The 0-based epoch.</param>
    /// <param name="firstStep">The step to start at (0, or later when resuming inside an epoch).</param>
    /// <returns>Index tensors the caller disposes (a dispose scope around each step does it).</returns>
    public IEnumerable<Tensor> Batches(int epoch, int firstStep = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstStep);
        using var order = Order(epoch);
        for (var step = firstStep; step < StepsPerEpoch; step++)
        {
            var start = step * BatchSize;
            using var slice = order.narrow(0, start, Math.Min(BatchSize, Count - start));
            yield return slice.clone();
        }
    }
}
