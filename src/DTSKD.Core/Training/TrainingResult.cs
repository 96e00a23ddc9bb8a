namespace DTSKD.Core.Training;

/// <summary>The outcome of <see cref="Trainer.Run"/>.</summary>
/// <param name="Metrics">Every completed epoch's metrics, in order (resumed epochs included).</param>
/// <param name="BestTop1">The best backbone test top-1 (%) over epochs &gt;= <see cref="TrainerOptions.BestAfterEpoch"/>, or null if none ran.</param>
/// <param name="BestEpoch">The 0-based epoch of <paramref name="BestTop1"/>, or null.</param>
/// <param name="FinalTop1">The last completed epoch's backbone test top-1 (%), or null.</param>
/// <param name="Cancelled">True when the run stopped on its cancellation token before the last epoch.</param>
public sealed record TrainingResult(IReadOnlyList<EpochMetrics> Metrics, double? BestTop1, int? BestEpoch, double? FinalTop1, bool Cancelled);
