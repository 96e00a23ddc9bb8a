namespace DTSKD.Core.Training;

/// <summary>The training loss became NaN or infinite. The last checkpoint written before it is intact.</summary>
public sealed class TrainingDivergedException : Exception
{
    /// <summary>Creates the exception for a step.</summary>
    /// <param name="epoch">The 0-based epoch.</param>
    /// <param name="step">The step within the epoch.</param>
    public TrainingDivergedException(int epoch, int step)
        : base($"The training loss became NaN or infinite at epoch {epoch} (0-based), step {step}. " +
               "Lower the learning rate or check the data; the last checkpoint written before this is intact.")
    {
        Epoch = epoch;
        Step = step;
    }

    /// <summary>Creates the exception with a message.</summary>
    public TrainingDivergedException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">The message.</param>
    public TrainingDivergedException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public TrainingDivergedException(string message, Exception innerException) : base(message, innerException)
    {
    }

    /// <summary>The 0-based epoch where the loss diverged.</summary>
    public int Epoch { get; }

    /// <summary>The step within the epoch where the loss first diverged.</summary>
    public int Step { get; }
}
