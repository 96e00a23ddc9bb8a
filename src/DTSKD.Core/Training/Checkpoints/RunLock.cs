using System.Text.Json;

namespace DTSKD.Core.Training;

/// <summary>
/// One training run per folder: an exclusive lock on <c>&lt;folder&gt;/.lock</c>, held by the operating system for as long
/// as the lock object lives. It dies with its process (a <c>kill -9</c> leaves nothing to clean up), and a second process
/// is refused at once with the holder's process id, host and start time.
/// </summary>
/// <remarks>
/// <para>
/// The trainer takes it on <see cref="TrainerOptions.CheckpointDirectory"/> for the length of <see cref="Trainer.Run"/>;
/// an application that writes more into the folder (configuration, logs) takes it first, for its whole run. Within one
/// process the lock is re-entrant: acquiring a folder the process already holds succeeds and counts.
/// </para>
/// <para>
/// The lock is an advisory file lock (<c>flock</c> on Linux and macOS, a share lock on Windows). Who holds it is written to
/// <c>.lock.owner</c> beside it; that file may outlive its process and means nothing once the lock is free.
/// </para>
/// </remarks>
public sealed class RunLock : IDisposable
{
    private const string LockName = ".lock";
    private const string OwnerName = ".lock.owner";
    private static readonly Dictionary<string, (FileStream File, int Count)> Held = new(StringComparer.Ordinal);
    private static readonly Lock Gate = new();
    private readonly string _key;
    private bool _disposed;

    private RunLock(string directory, string key)
    {
        Directory = directory;
        _key = key;
    }

    /// <summary>The locked folder.</summary>
    public string Directory { get; }

    /// <summary>Locks a folder (creating it if needed) for this process.</summary>
    /// <param name="directory">The run folder.</param>
    /// <returns>The lock; dispose it to release it.</returns>
    /// <exception cref="RunFolderInUseException">Another process holds the folder; the message names it.</exception>
    /// <exception cref="IOException">The folder or its lock file cannot be created.</exception>
    public static RunLock Acquire(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var full = Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar);
        lock (Gate)
        {
            if (Held.TryGetValue(full, out var held))
            {
                Held[full] = (held.File, held.Count + 1);
                return new RunLock(directory, full);
            }

            System.IO.Directory.CreateDirectory(full);
            FileStream file;
            try
            {
                file = new FileStream(Path.Combine(full, LockName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException ex) when (ex is not FileNotFoundException and not DirectoryNotFoundException && IsSharingViolation(ex))
            {
                throw new RunFolderInUseException(directory, ReadOwner(full), ex);
            }

            WriteOwner(full);
            Held[full] = (file, 1);
            return new RunLock(directory, full);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        lock (Gate)
        {
            var (file, count) = Held[_key];
            if (count > 1)
            {
                Held[_key] = (file, count - 1);
                return;
            }

            Held.Remove(_key);

            // The lock file stays: deleting it would let a process that opened it a moment ago lock an orphan while a third
            // creates and locks a new one.
            file.Dispose();
        }
    }

    // A sharing violation is the lock being held; anything else (no permission, no space) is a plain I/O error.
    private static bool IsSharingViolation(IOException ex) =>
        ex.HResult is 32 or unchecked((int)0x80070020) || ex.Message.Contains("being used by another process", StringComparison.OrdinalIgnoreCase);

    private static void WriteOwner(string directory)
    {
        var owner = new RunLockOwner(Environment.ProcessId, Environment.MachineName, DateTime.UtcNow);
        try
        {
            AtomicFile.WriteAllText(Path.Combine(directory, OwnerName), JsonSerializer.Serialize(owner));
        }
        catch (IOException)
        {
            // Only the message of a refused second process needs it.
        }
    }

    /// <summary>Who the note says holds the folder, when that can be true: a live process other than this one (on this host, where that can be checked).</summary>
    private static RunLockOwner? ReadOwner(string directory)
    {
        RunLockOwner? owner;
        try
        {
            owner = JsonSerializer.Deserialize<RunLockOwner>(File.ReadAllText(Path.Combine(directory, OwnerName)));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }

        if (owner is null || owner.Host != Environment.MachineName)
        {
            return owner;
        }

        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(owner.ProcessId);
            return owner.ProcessId == Environment.ProcessId || process.HasExited ? null : owner;
        }
        catch (ArgumentException)
        {
            // A stale note: the lock is held by some process that did not write it.
            return null;
        }
    }
}
