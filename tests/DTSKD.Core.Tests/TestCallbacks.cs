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
