namespace DTSKD.Core.Training;

/// <summary>A progress report: during an epoch every <see cref="TrainerOptions.LogInterval"/> steps, and once at its end.</summary>
public sealed record TrainingProgress
{
    /// <summary>Creates the record.</summary>
    /// <param name="epoch">The 0-based epoch.</param>
    /// <param name="totalEpochs">The run's number of epochs.</param>
    /// <param name="step">Steps done in this epoch.</param>
    /// <param name="stepsPerEpoch">Steps in an epoch.</param>
    /// <param name="runningLoss">Mean total loss so far in this epoch.</param>
    /// <param name="runningTop1">Backbone training top-1 (%) so far in this epoch.</param>
    /// <param name="imagesPerSecond">Training throughput so far in this epoch.</param>
    /// <param name="completed">The epoch's metrics once it has ended (test accuracy included); null during the epoch.</param>
    internal TrainingProgress(int epoch, int totalEpochs, int step, int stepsPerEpoch, double runningLoss, double runningTop1, double imagesPerSecond, EpochMetrics? completed)
    {
        Epoch = epoch;
        TotalEpochs = totalEpochs;
        Step = step;
        StepsPerEpoch = stepsPerEpoch;
        RunningLoss = runningLoss;
        RunningTop1 = runningTop1;
        ImagesPerSecond = imagesPerSecond;
        Completed = completed;
    }

    /// <summary>The 0-based epoch.</summary>
    public int Epoch { get; }

    /// <summary>The run's number of epochs.</summary>
    public int TotalEpochs { get; }

    /// <summary>Steps done in this epoch.</summary>
    public int Step { get; }

    /// <summary>Steps in an epoch.</summary>
    public int StepsPerEpoch { get; }

    /// <summary>Mean total loss so far in this epoch.</summary>
    public double RunningLoss { get; }

    /// <summary>Backbone training top-1 (%) so far in this epoch.</summary>
    public double RunningTop1 { get; }

    /// <summary>Training throughput so far in this epoch.</summary>
    public double ImagesPerSecond { get; }

    /// <summary>The epoch's metrics once it has ended (test accuracy included); null during the epoch.</summary>
    public EpochMetrics? Completed { get; }
}
