namespace DTSKD.Core.Training;

/// <summary>A progress report: during an epoch every <see cref="TrainerOptions.LogInterval"/> steps, and once at its end.</summary>
/// <param name="Epoch">The 0-based epoch.</param>
/// <param name="TotalEpochs">The run's number of epochs.</param>
/// <param name="Step">Steps done in this epoch.</param>
/// <param name="StepsPerEpoch">Steps in an epoch.</param>
/// <param name="RunningLoss">Mean total loss so far in this epoch.</param>
/// <param name="RunningTop1">Backbone training top-1 (%) so far in this epoch.</param>
/// <param name="ImagesPerSecond">Training throughput so far in this epoch.</param>
/// <param name="Completed">The epoch's metrics once it has ended (test accuracy included); null during the epoch.</param>
public sealed record TrainingProgress(
    int Epoch,
    int TotalEpochs,
    int Step,
    int StepsPerEpoch,
    double RunningLoss,
    double RunningTop1,
    double ImagesPerSecond,
    EpochMetrics? Completed);
