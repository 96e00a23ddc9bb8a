namespace DTSKD.Core.Training;

/// <summary>How often <see cref="TrainerOptions.Scheduler"/> is stepped.</summary>
public enum SchedulerInterval
{
    /// <summary>After every epoch (the recipe's MultiStepLR, cosine annealing over epochs).</summary>
    Epoch,

    /// <summary>After every training step (one-cycle and warm-up schedules over steps).</summary>
    Step,
}
