namespace DTSKD.Core.Training;

/// <summary>The outcome of <see cref="Trainer.Run"/>.</summary>
public sealed record TrainingResult
{
    /// <summary>Creates the record.</summary>
    /// <param name="metrics">Every completed epoch's metrics, in order (resumed epochs included).</param>
    /// <param name="bestTop1">The best backbone test top-1 (%) over epochs &gt;= <see cref="TrainerOptions.BestAfterEpoch"/>, or null if none ran.</param>
    /// <param name="bestEpoch">The 0-based epoch of <see cref="BestTop1"/>, or null.</param>
    /// <param name="finalTop1">The last completed epoch's backbone test top-1 (%), or null.</param>
    /// <param name="cancelled">True when the run stopped on its cancellation token before the last epoch.</param>
    internal TrainingResult(IReadOnlyList<EpochMetrics> metrics, double? bestTop1, int? bestEpoch, double? finalTop1, bool cancelled)
    {
        Metrics = metrics;
        BestTop1 = bestTop1;
        BestEpoch = bestEpoch;
        FinalTop1 = finalTop1;
        Cancelled = cancelled;
    }

    /// <summary>Every completed epoch's metrics, in order (resumed epochs included).</summary>
    public IReadOnlyList<EpochMetrics> Metrics { get; }

    /// <summary>The best backbone test top-1 (%) over epochs &gt;= <see cref="TrainerOptions.BestAfterEpoch"/>, or null if none ran.</summary>
    public double? BestTop1 { get; }

    /// <summary>The 0-based epoch of <see cref="BestTop1"/>, or null.</summary>
    public int? BestEpoch { get; }

    /// <summary>The last completed epoch's backbone test top-1 (%), or null.</summary>
    public double? FinalTop1 { get; }

    /// <summary>True when the run stopped on its cancellation token before the last epoch.</summary>
    public bool Cancelled { get; }
}
