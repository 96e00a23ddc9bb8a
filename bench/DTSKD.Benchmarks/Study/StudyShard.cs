using System.Globalization;

namespace DTSKD.Benchmarks.Study;

/// <summary>
/// Which part of a study this process runs: shard i of n takes the runs whose position in the study's order
/// (rows outer, seeds inner) is i modulo n. Given as <c>--shard i/n</c>, or read from a Slurm job array
/// (<c>SLURM_ARRAY_TASK_ID</c>, <c>SLURM_ARRAY_TASK_MIN</c>, <c>SLURM_ARRAY_TASK_COUNT</c>) or a Kubernetes Indexed Job
/// (<c>JOB_COMPLETION_INDEX</c>, with the count from <c>--shards</c>).
/// </summary>
/// <param name="Index">i, in 0..n-1.</param>
/// <param name="Count">n, at least 1.</param>
/// <param name="Source">Where the shard came from, for the log.</param>
public sealed record StudyShard(int Index, int Count, string Source)
{
    /// <summary>The whole study in one process.</summary>
    public static StudyShard Whole { get; } = new(0, 1, "one process");

    /// <summary>Whether this is the whole study.</summary>
    public bool IsWhole => Count == 1;

    /// <summary>Whether the run at this position of the study's order belongs to the shard.</summary>
    public bool Takes(int position) => position % Count == Index;

    /// <summary>The shard of the command line or, without one, of the scheduler's environment; the whole study otherwise.</summary>
    /// <param name="shard">The <c>--shard i/n</c> value, if given.</param>
    /// <param name="shards">The <c>--shards n</c> value, if given (the count a Kubernetes Indexed Job does not pass).</param>
    /// <param name="environment">The process environment (a parameter so tests can give their own).</param>
    /// <exception cref="ArgumentException">A value is malformed or out of range; the message names it.</exception>
    public static StudyShard Resolve(string? shard, int? shards, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        if (shard is not null)
        {
            var parts = shard.Split('/');
            if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var i)
                || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < 1 || i >= n)
            {
                throw new ArgumentException($"--shard '{shard}': expected i/n with 0 <= i < n, for example 0/3.");
            }

            return new StudyShard(i, n, "--shard");
        }

        if (environment("SLURM_ARRAY_TASK_ID") is { } task)
        {
            var id = Number(task, "SLURM_ARRAY_TASK_ID");
            var min = environment("SLURM_ARRAY_TASK_MIN") is { } m ? Number(m, "SLURM_ARRAY_TASK_MIN") : 0;
            var count = shards ?? (environment("SLURM_ARRAY_TASK_COUNT") is { } c ? Number(c, "SLURM_ARRAY_TASK_COUNT")
                : throw new ArgumentException("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: pass --shards n."));
            return Checked(id - min, count, $"Slurm array task {id}");
        }

        if (environment("JOB_COMPLETION_INDEX") is { } index)
        {
            var count = shards ?? throw new ArgumentException("JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job): pass --shards n, the Job's completions.");
            return Checked(Number(index, "JOB_COMPLETION_INDEX"), count, $"Kubernetes completion index {index}");
        }

        return shards is { } whole && whole != 1
            ? throw new ArgumentException("--shards needs --shard i/n, SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX to say which shard this is.")
            : Whole;
    }

    private static StudyShard Checked(int index, int count, string source) =>
        count >= 1 && index >= 0 && index < count
            ? new StudyShard(index, count, source)
            : throw new ArgumentException($"{source}: shard {index} of {count} is out of range (0..{count - 1}).");

    private static int Number(string value, string name) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : throw new ArgumentException($"{name}='{value}' is not a whole number.");
}
