using System.Globalization;
using DTSKD.Core;
using DTSKD.Core.Training;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// A run's output folder: what a run leaves in it, the checks made before anything is written (an existing run is
/// never overwritten silently, the folder must be writable), and moving an old run aside on <c>--overwrite</c>.
/// </summary>
public sealed class RunFolder(string path)
{
    /// <summary>The files a run writes; any of the first four means the folder holds a run.</summary>
    public static readonly string[] RunFiles = ["last.ckpt", "best.ckpt", "metrics.csv", "report.md", "config.json", "train.log", "accuracy.png", "loss.png", "schedule.png"];

    /// <summary>The folder.</summary>
    public string Path { get; } = path;

    /// <summary>The checkpoint a resume continues from.</summary>
    public string LastCheckpoint => System.IO.Path.Combine(Path, "last.ckpt");

    /// <summary>The best epoch's checkpoint, once the best is counted.</summary>
    public string BestCheckpoint => System.IO.Path.Combine(Path, "best.ckpt");

    /// <summary>The files of an earlier run present in the folder (checkpoints, metrics, report).</summary>
    public IReadOnlyList<string> ExistingRun() =>
        [.. RunFiles.Take(4).Where(f => File.Exists(System.IO.Path.Combine(Path, f)))];

    /// <summary>Null when files can be created in the folder (or, if it does not exist yet, in its nearest existing parent); else why not.</summary>
    public string? WhyNotWritable()
    {
        var probeIn = System.IO.Path.GetFullPath(Path);
        while (!Directory.Exists(probeIn))
        {
            if (File.Exists(probeIn))
            {
                return $"'{probeIn}' is a file, not a folder";
            }

            probeIn = System.IO.Path.GetDirectoryName(probeIn) ?? throw new InvalidOperationException("No existing parent folder.");
        }

        var probe = System.IO.Path.Combine(probeIn, $".dtskd-write-check-{Guid.NewGuid():N}");
        try
        {
            using (File.Create(probe, 1, FileOptions.DeleteOnClose))
            {
            }

            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"cannot create files in '{probeIn}' ({ex.Message})";
        }
    }

    /// <summary>
    /// Takes the folder for this process (<see cref="RunLock"/>), creating it if needed, and removes the temporary files
    /// an interrupted run left in it. Until <see cref="Claim.Commit"/>, disposing the claim removes the folders it created.
    /// </summary>
    /// <exception cref="RunFolderInUseException">Another process is training in the folder.</exception>
    public Claim Take()
    {
        var full = System.IO.Path.GetFullPath(Path);
        var created = new List<string>();
        for (var d = full; d is not null && !Directory.Exists(d); d = System.IO.Path.GetDirectoryName(d))
        {
            created.Add(d);
        }

        var runLock = RunLock.Acquire(full);
        AtomicFile.RemoveLeftovers(full);
        return new Claim(runLock, created);
    }

    /// <summary>A run folder held by this process.</summary>
    public sealed class Claim(RunLock runLock, IReadOnlyList<string> created) : IDisposable
    {
        private bool _committed;
        private RunLock _lock = runLock;

        /// <summary>Releases the lock held so far, then holds the one <paramref name="next"/> takes.</summary>
        internal void MoveTo(Func<RunLock> next)
        {
            _lock.Dispose();
            _lock = next();
        }

        /// <summary>The run has written into the folder: keep it whatever happens next.</summary>
        public void Commit() => _committed = true;

        /// <inheritdoc />
        public void Dispose()
        {
            _lock.Dispose();
            if (_committed)
            {
                return;
            }

            // Nothing of the run was written: leave no trace of the folders made to hold the lock.
            foreach (var folder in created)
            {
                try
                {
                    foreach (var file in Directory.GetFiles(folder).Where(f => System.IO.Path.GetFileName(f) is ".lock" or ".lock.owner"))
                    {
                        File.Delete(file);
                    }

                    Directory.Delete(folder);
                }
                catch (IOException)
                {
                    // Something else is in it now: it stays.
                    break;
                }
            }
        }
    }

    /// <summary>Moves the folder aside to <c>&lt;name&gt;.replaced-&lt;UTC time&gt;</c> (nothing is deleted), holding it throughout.</summary>
    /// <param name="claim">This process's claim on the folder; it is moved to the new, empty folder.</param>
    /// <returns>Where the old run now is.</returns>
    public string MoveAside(Claim claim)
    {
        ArgumentNullException.ThrowIfNull(claim);
        var full = System.IO.Path.GetFullPath(Path).TrimEnd(System.IO.Path.DirectorySeparatorChar);
        var target = $"{full}.replaced-{DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}";
        for (var i = 2; Directory.Exists(target) || File.Exists(target); i++)
        {
            target = $"{full}.replaced-{DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}-{i}";
        }

        Directory.Move(full, target);

        // The lock file moved with the old run: let it go, and lock the new folder in its place (another process taking it
        // in between makes this throw, and nothing of the run is written).
        claim.MoveTo(() => RunLock.Acquire(full));
        return target;
    }

    /// <summary>Appends a line to <c>train.log</c> that marks where a start or a resume begins, with the command line.</summary>
    public void MarkLog(string what, IEnumerable<string> args)
    {
        var line = string.Create(CultureInfo.InvariantCulture,
            $"===== {what} {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss}Z: DTSKD.Samples.Cifar100 {string.Join(' ', args.Select(Quote))}{Environment.NewLine}");
        File.AppendAllText(System.IO.Path.Combine(Path, "train.log"), line);
    }

    private static string Quote(string arg) => arg.Length == 0 || arg.Any(char.IsWhiteSpace) ? $"\"{arg}\"" : arg;
}
