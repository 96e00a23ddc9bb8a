using DTSKD.Core.Data;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// Which training samples each step of an epoch trains, on this rank: a seeded permutation (or
/// <see cref="TrainerOptions.EpochOrder"/>) in one process; with several ranks, each sample belongs to one rank for the
/// whole run, so a sample's history is read and written by one rank only (docs/scaling.md).
/// </summary>
internal sealed class EpochOrder
{
    // A stream of its own, so the shards do not correlate with any epoch's permutation.
    private const ulong ShardStream = 0x5A3D_0002;
    private readonly int _count;
    private readonly TrainerOptions _options;
    private readonly IProcessGroup _group;

    public EpochOrder(int trainCount, TrainerOptions options, IProcessGroup group)
    {
        _count = trainCount;
        _options = options;
        _group = group;
        if (group.WorldSize > trainCount)
        {
            throw new ArgumentException($"{group.WorldSize} ranks cannot share {trainCount} training samples; at most {trainCount} ranks.", nameof(group));
        }

        if (group.WorldSize > 1 && options.EpochOrder is not null)
        {
            throw new ArgumentException($"{nameof(TrainerOptions.EpochOrder)} orders one process's samples; with {group.WorldSize} ranks the order is the ranks' shards.", nameof(options));
        }
    }

    /// <summary>The training set's size.</summary>
    public int SampleCount => _count;

    /// <summary>Samples this rank trains per epoch (a shard padded to the largest shard's size with several ranks).</summary>
    public int SamplesPerRank => _group.WorldSize == 1 ? _count : (_count + _group.WorldSize - 1) / _group.WorldSize;

    /// <summary>Steps in an epoch of the default order.</summary>
    public int StepsPerEpoch => StepsFor(SamplesPerRank);

    /// <summary>Steps for an order of <paramref name="count"/> samples, with or without the last, smaller batch.</summary>
    public int StepsFor(int count) => _options.DropLast ? count / _options.BatchSize : (count + _options.BatchSize - 1) / _options.BatchSize;

    /// <summary>The epoch's sample order on this rank (int64 on the CPU), trimmed to whole batches with <see cref="TrainerOptions.DropLast"/>.</summary>
    public Tensor For(int epoch)
    {
        using var scope = NewDisposeScope();
        var order = _group.WorldSize > 1 ? Shard(epoch) : Whole(epoch);
        var kept = StepsFor((int)order.shape[0]) * (long)_options.BatchSize;
        order = order.to(ScalarType.Int64, CPU);
        return (kept < order.shape[0] ? order.narrow(0, 0, kept) : order).MoveToOuterDisposeScope();
    }

    private Tensor Whole(int epoch)
    {
        if (_options.EpochOrder is not { } custom)
        {
            return new BatchSampler(_count, _options.BatchSize, _options.Seed, shuffle: true, _options.DropLast).Order(epoch);
        }

        var order = custom(epoch) ?? throw new InvalidOperationException($"{nameof(TrainerOptions.EpochOrder)} returned null for epoch {epoch}.");
        TensorChecks.IndexVector(order, $"{nameof(TrainerOptions.EpochOrder)}({epoch})", order.dim() == 1 ? order.shape[0] : -1, _count, "sample indices");
        return order;
    }

    /// <summary>
    /// This rank's samples, shuffled for the epoch. The run's seed splits 0..N-1 once into the ranks' shards (rank r holds
    /// positions r, r + R, ... of one permutation); a shorter shard repeats its first samples so every rank takes the same
    /// number of steps, as PyTorch's DistributedSampler pads.
    /// </summary>
    private Tensor Shard(int epoch)
    {
        var rank = _group.Rank;
        var mine = Owned();
        if (mine.shape[0] < SamplesPerRank)
        {
            mine = cat([mine, mine.narrow(0, 0, SamplesPerRank - mine.shape[0])]);
        }

        using var shuffle = new Generator(SeedSequence.Derive(_options.Seed, epoch, rank, ShardStream));
        return mine.index(randperm(mine.shape[0], ScalarType.Int64, generator: shuffle));
    }

    /// <summary>The samples this rank owns for the whole run, without padding: <see cref="DataParallel.ShardSize"/> of them.</summary>
    private Tensor Owned()
    {
        using var split = new Generator(SeedSequence.Derive(_options.Seed, 0, 0, ShardStream));
        return randperm(_count, ScalarType.Int64, generator: split).index(arange(_group.Rank, _count, _group.WorldSize, ScalarType.Int64));
    }

    /// <summary>
    /// Each training sample's row in a history that holds this rank's shard only (int64 on the CPU, -1 for the other
    /// ranks' samples, which this rank never trains).
    /// </summary>
    public Tensor LocalRows()
    {
        using var scope = NewDisposeScope();
        var owned = Owned();
        var rows = full(_count, -1L, ScalarType.Int64);
        rows.index_put_(arange(owned.shape[0], ScalarType.Int64), owned);

        // Owned by the optimization step for the trainer's life, not by whatever scope the trainer was built in.
        return rows.DetachFromDisposeScope();
    }
}
