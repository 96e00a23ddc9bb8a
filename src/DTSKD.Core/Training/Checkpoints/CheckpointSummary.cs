namespace DTSKD.Core.Training;

/// <summary>What a checkpoint says about its run (<see cref="TrainerCheckpoint.LoadModel"/>).</summary>
public sealed record CheckpointSummary
{
    internal CheckpointSummary(int epochsDone, int stepsDone, IReadOnlyList<EpochMetrics> metrics, string objective, TrainingPrecision precision, string? dataKey)
    {
        DataKey = dataKey;
        Precision = precision;
        EpochsDone = epochsDone;
        StepsDone = stepsDone;
        Metrics = metrics;
        Objective = objective;
    }

    /// <summary>The number of epochs completed when the checkpoint was written.</summary>
    public int EpochsDone { get; }

    /// <summary>Steps done in the next epoch (non-zero for a checkpoint written mid-epoch on cancellation).</summary>
    public int StepsDone { get; }

    /// <summary>Every completed epoch's metrics, in order.</summary>
    public IReadOnlyList<EpochMetrics> Metrics { get; }

    /// <summary>The precision the run trained (and evaluated) in; evaluate in it to reproduce the run's own figures.</summary>
    public TrainingPrecision Precision { get; }

    /// <summary>The name of the objective the run trained with.</summary>
    public string Objective { get; }

    /// <summary>The run's <see cref="TrainerOptions.DataKey"/>, or null when it set none (or predates it).</summary>
    public string? DataKey { get; }
}
