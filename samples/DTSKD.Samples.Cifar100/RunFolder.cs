using System.Globalization;

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

    /// <summary>Moves the folder aside to <c>&lt;name&gt;.replaced-&lt;UTC time&gt;</c> (nothing is deleted).</summary>
    /// <returns>Where the old run now is.</returns>
    public string MoveAside()
    {
        var full = System.IO.Path.GetFullPath(Path).TrimEnd(System.IO.Path.DirectorySeparatorChar);
        var target = $"{full}.replaced-{DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}";
        for (var i = 2; Directory.Exists(target) || File.Exists(target); i++)
        {
            target = $"{full}.replaced-{DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}-{i}";
        }

        Directory.Move(full, target);
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
