using DTSKD.Core.Training;

namespace DTSKD.Core.Tests;

/// <summary>A callback that forwards the hooks a test cares about to delegates.</summary>
internal sealed class TestCallback : TrainerCallback
{
    public Action<TrainingProgress>? Progress { get; init; }

    public Action<TrainingStep>? StepEnd { get; init; }

    public Action<EpochMetrics>? EpochEnd { get; init; }

    public Action<string>? CheckpointSaved { get; init; }

    public override void OnProgress(Trainer trainer, TrainingProgress progress) => Progress?.Invoke(progress);

    public override void OnStepEnd(Trainer trainer, TrainingStep batch) => StepEnd?.Invoke(batch);

    public override void OnEpochEnd(Trainer trainer, EpochMetrics metrics) => EpochEnd?.Invoke(metrics);

    public override void OnCheckpointSaved(Trainer trainer, string path) => CheckpointSaved?.Invoke(path);
}

/// <summary>The run the resume tests compare: cancelled inside epoch 2 when asked, or continued from a checkpoint.</summary>
internal static class InterruptedRun
{
    /// <summary>Runs <paramref name="trainer"/>, first loading <paramref name="resume"/> if given, and cancelling
    /// through <paramref name="stop"/> (if given) at step 2 of epoch 2.</summary>
    public static TrainingResult Run(Trainer trainer, CancellationTokenSource? stop, string? resume)
    {
        if (stop is not null)
        {
            trainer.Callbacks.Add(new TestCallback { Progress = p => { if (p.Epoch == 1 && p.Step == 2) { stop.Cancel(); } } });
        }

        if (resume is not null)
        {
            trainer.LoadCheckpoint(resume);
        }

        return trainer.Run(stop?.Token ?? default);
    }
}
