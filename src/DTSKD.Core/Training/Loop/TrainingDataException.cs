namespace DTSKD.Core.Training;

/// <summary>
/// The training or test set could not be read mid-run (an image deleted, unreadable or corrupt while streaming). The
/// trainer stopped at the last finished step (for the test set, after the epoch's last step, before its evaluation) and,
/// with a checkpoint folder, wrote <c>last.ckpt</c> there first, as a cancelled run does: once the data is whole again,
/// the run resumes at <see cref="Epoch"/>, <see cref="Step"/>.
/// </summary>
public sealed class TrainingDataException : IOException
{
    /// <summary>Creates the exception for a step.</summary>
    /// <param name="message">What failed, naming the file where the reader said.</param>
    /// <param name="epoch">The 0-based epoch that was stopped.</param>
    /// <param name="step">The first step not trained (every earlier one is in the checkpoint).</param>
    /// <param name="checkpoint">The checkpoint written at that step, or null without a checkpoint folder.</param>
    /// <param name="innerException">The reader's error; null when another rank's read failed.</param>
    public TrainingDataException(string message, int epoch, int step, string? checkpoint, Exception? innerException)
        : base(message, innerException)
    {
        Epoch = epoch;
        Step = step;
        Checkpoint = checkpoint;
    }

    /// <summary>Creates the exception.</summary>
    public TrainingDataException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">The message.</param>
    public TrainingDataException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public TrainingDataException(string message, Exception innerException) : base(message, innerException)
    {
    }

    /// <summary>The 0-based epoch that was stopped.</summary>
    public int Epoch { get; }

    /// <summary>The first step of <see cref="Epoch"/> not trained; the epoch's step count when its evaluation failed.</summary>
    public int Step { get; }

    /// <summary>The checkpoint written at <see cref="Epoch"/>, <see cref="Step"/> (<c>last.ckpt</c> in the checkpoint folder), or null when there is no folder.</summary>
    public string? Checkpoint { get; }
}
