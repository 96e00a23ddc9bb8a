using System.Globalization;

namespace DTSKD.Core.Training;

/// <summary>A run folder is locked by another process (<see cref="RunLock"/>).</summary>
public sealed class RunFolderInUseException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="directory">The folder.</param>
    /// <param name="owner">Who holds it, when known.</param>
    /// <param name="inner">The sharing violation.</param>
    public RunFolderInUseException(string directory, RunLockOwner? owner, Exception? inner = null)
        : base(Describe(directory, owner), inner)
    {
        Directory = directory;
        Owner = owner;
    }

    /// <summary>Creates the exception.</summary>
    public RunFolderInUseException()
    {
        Directory = string.Empty;
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">The message.</param>
    public RunFolderInUseException(string message) : base(message)
    {
        Directory = string.Empty;
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public RunFolderInUseException(string message, Exception innerException) : base(message, innerException)
    {
        Directory = string.Empty;
    }

    /// <summary>The folder.</summary>
    public string Directory { get; }

    /// <summary>Who holds it, when known.</summary>
    public RunLockOwner? Owner { get; }

    private static string Describe(string directory, RunLockOwner? owner) =>
        owner is null
            ? $"'{directory}' is in use by another training process."
            : string.Create(CultureInfo.InvariantCulture,
                $"'{directory}' is in use by another training: process {owner.ProcessId} on {owner.Host}, since {owner.SinceUtc:yyyy-MM-dd HH:mm:ss}Z.");
}
