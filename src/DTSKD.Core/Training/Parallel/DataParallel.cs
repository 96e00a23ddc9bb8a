namespace DTSKD.Core.Training;

/// <summary>Sizes for data-parallel training (docs/scaling.md).</summary>
public static class DataParallel
{
    /// <summary>
    /// The training samples <paramref name="group"/>'s rank owns for the whole run: the rows its historical teacher needs.
    /// Create the rank's objective with this many samples (<c>DualTeacherLoss.For(model, DataParallel.ShardSize(N, group))</c>)
    /// and the trainer maps each sample to its row in the shard, so every rank holds N / R rows instead of N.
    /// </summary>
    /// <param name="sampleCount">N, the training set's size.</param>
    /// <param name="group">The rank and world size (<see cref="TrainerOptions.ProcessGroup"/>).</param>
    /// <returns>The number of samples of the rank's shard: N / R, rounded up for the first N mod R ranks.</returns>
    public static int ShardSize(int sampleCount, IProcessGroup group)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentOutOfRangeException.ThrowIfLessThan(sampleCount, group.WorldSize);
        return (sampleCount - group.Rank + group.WorldSize - 1) / group.WorldSize;
    }
}
