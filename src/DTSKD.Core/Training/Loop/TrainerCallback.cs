namespace DTSKD.Core.Training;

/// <summary>
/// Hooks into a <see cref="Trainer"/>'s loop: derive from it, override the hooks you need and add it to
/// <see cref="Trainer.Callbacks"/>. Progress displays, metric files, TensorBoard and early stopping are callbacks,
/// so the loop stays the same whatever a run reports.
/// </summary>
/// <remarks>
/// Hooks run on the training thread, in the order the callbacks were added. A hook that reads tensor values (for
/// example <see cref="TrainingStep.Loss"/> in <see cref="OnStepEnd"/>) makes the step wait for the device.
/// </remarks>
public abstract class TrainerCallback
{
    /// <summary>Called when <see cref="Trainer.Run"/> starts (also when it resumes).</summary>
    /// <param name="trainer">The trainer.</param>
    public virtual void OnTrainStart(Trainer trainer)
    {
    }

    /// <summary>Called after every optimizer step, with that step's tensors (valid only during the call).</summary>
    /// <param name="trainer">The trainer.</param>
    /// <param name="batch">The step that just ran.</param>
    public virtual void OnStepEnd(Trainer trainer, TrainingStep batch)
    {
    }

    /// <summary>Called every <see cref="TrainerOptions.LogInterval"/> steps with the epoch's running figures, and once when an epoch ends (with <see cref="TrainingProgress.Completed"/> set).</summary>
    /// <param name="trainer">The trainer.</param>
    /// <param name="progress">Where the run stands.</param>
    public virtual void OnProgress(Trainer trainer, TrainingProgress progress)
    {
    }

    /// <summary>Called when an epoch has been trained and evaluated, after its checkpoints are written.</summary>
    /// <param name="trainer">The trainer.</param>
    /// <param name="metrics">The epoch's metrics (also the last entry of <see cref="Trainer.Metrics"/>).</param>
    public virtual void OnEpochEnd(Trainer trainer, EpochMetrics metrics)
    {
    }

    /// <summary>Called after a checkpoint file has been written (atomically) by the trainer.</summary>
    /// <param name="trainer">The trainer.</param>
    /// <param name="path">The checkpoint file.</param>
    public virtual void OnCheckpointSaved(Trainer trainer, string path)
    {
    }

    /// <summary>Called when <see cref="Trainer.Run"/> returns, finished or cancelled (not when it throws).</summary>
    /// <param name="trainer">The trainer.</param>
    /// <param name="result">What the run returns.</param>
    public virtual void OnTrainEnd(Trainer trainer, TrainingResult result)
    {
    }
}
