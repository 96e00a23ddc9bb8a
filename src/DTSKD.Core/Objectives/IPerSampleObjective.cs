namespace DTSKD.Core;

/// <summary>
/// An objective that keeps a row of memory per training sample (the historical teacher of a <see cref="DualTeacherLoss"/>):
/// how many rows it holds, so that the trainer can map each sample to its row when a data-parallel rank holds only its
/// shard (<see cref="Training.DataParallel.ShardSize"/>).
/// </summary>
public interface IPerSampleObjective : IMultiBranchObjective
{
    /// <summary>The rows of per-sample memory: the training set's size, a rank's shard, or null when this instance keeps none.</summary>
    int? SampleRows { get; }
}
