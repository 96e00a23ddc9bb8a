namespace DTSKD.Core.Data;

/// <summary>Reading an epoch the way the trainer does, for a loop of your own.</summary>
public static class BatchReaderExtensions
{
    /// <summary>
    /// The batches of one epoch, in the sampler's order for it (a permutation seeded by the sampler's seed and the epoch,
    /// the trainer's order); a last, smaller batch is left out when the sampler drops it.
    /// </summary>
    /// <param name="reader">A reader of the training set.</param>
    /// <param name="sampler">The run's sampler (the training set's size, the batch size, the seed).</param>
    /// <param name="epoch">The 0-based epoch.</param>
    /// <param name="firstStep">The first batch to yield (later than 0 when resuming inside an epoch).</param>
    /// <returns>Batches the caller disposes: <c>foreach (var batch in reader.Read(sampler, epoch)) { using (batch) { ... } }</c>.</returns>
    public static IEnumerable<ImageBatch> Read(this IBatchReader reader, BatchSampler sampler, int epoch, int firstStep = 0)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(sampler);
        return Epoch(reader, sampler, epoch, firstStep);
    }

    private static IEnumerable<ImageBatch> Epoch(IBatchReader reader, BatchSampler sampler, int epoch, int firstStep)
    {
        using var order = sampler.Order(epoch);
        using var kept = order.narrow(0, 0, Math.Min(sampler.Count, (long)sampler.StepsPerEpoch * sampler.BatchSize));
        foreach (var batch in reader.Read(kept, sampler.BatchSize, firstStep))
        {
            yield return batch;
        }
    }
}
