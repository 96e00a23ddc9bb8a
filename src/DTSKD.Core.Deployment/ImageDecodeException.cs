namespace DTSKD.Core.Deployment;

/// <summary>An image that cannot be used: empty, not an image, truncated, or too large. The message names the file and says which.</summary>
public sealed class ImageDecodeException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The image's file (or name).</param>
    /// <param name="reason">What is wrong, as the end of a sentence that starts with the file ("is empty (0 bytes)").</param>
    /// <param name="inner">The cause, if any.</param>
    public ImageDecodeException(string path, string reason, Exception? inner = null)
        : base($"'{path}' {reason}.", inner)
    {
        Path = path;
        Reason = reason;
    }

    /// <summary>Creates the exception.</summary>
    public ImageDecodeException()
    {
        Path = Reason = string.Empty;
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">The message.</param>
    public ImageDecodeException(string message) : base(message)
    {
        Path = Reason = string.Empty;
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public ImageDecodeException(string message, Exception innerException) : base(message, innerException)
    {
        Path = Reason = string.Empty;
    }

    /// <summary>The image's file (or name).</summary>
    public string Path { get; }

    /// <summary>What is wrong with it.</summary>
    public string Reason { get; }
}
