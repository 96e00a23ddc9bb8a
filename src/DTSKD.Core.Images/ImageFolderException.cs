namespace DTSKD.Core.Images;

/// <summary>
/// An image folder that cannot be used as it is: no class folders, a class without images, images that cannot be decoded.
/// <see cref="Problems"/> holds one line per problem (every bad image is named), the message all of them and a summary.
/// </summary>
public sealed class ImageFolderException : IOException
{
    /// <summary>Creates the exception for one problem.</summary>
    /// <param name="message">The problem, as one line.</param>
    public ImageFolderException(string message)
        : base(message)
    {
        Problems = [message];
        Summary = message;
    }

    /// <summary>Creates the exception for several problems and a summary line.</summary>
    /// <param name="problems">One line per problem.</param>
    /// <param name="summary">One line that sums them up and says what to do.</param>
    public ImageFolderException(IReadOnlyList<string> problems, string summary)
        : base(string.Join(Environment.NewLine, [.. problems, summary]))
    {
        ArgumentNullException.ThrowIfNull(problems);
        Problems = problems;
        Summary = summary;
    }

    /// <summary>Creates the exception.</summary>
    public ImageFolderException()
    {
        Problems = [];
        Summary = string.Empty;
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public ImageFolderException(string message, Exception innerException) : base(message, innerException)
    {
        Problems = [message];
        Summary = message;
    }

    /// <summary>One line per problem.</summary>
    public IReadOnlyList<string> Problems { get; }

    /// <summary>The line that sums the problems up (the only problem, when there is one).</summary>
    public string Summary { get; }
}
