using DTSKD.Core.Training;
using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// Everything a training command checks before it writes anything: a resumed run's own configuration merged with what
/// the command line changes, the device, the run folder (writable, not holding another run, its checkpoint readable),
/// and the claim on the folder that keeps a second training out of it.
/// </summary>
internal static class Preflight
{
    /// <summary>What training may start with.</summary>
    internal sealed record Cleared(ExperimentConfig Config, IReadOnlyList<string> Changes, Device Device, RunFolder Folder, RunFolder.Claim? Claim, IReadOnlyList<string> Existing);

    /// <summary>The run cleared to start (its claim held), or the exit code and one line saying why not.</summary>
    /// <param name="config">The command line's configuration.</param>
    /// <param name="given">The options the command line gave.</param>
    /// <param name="claim">Whether this process takes the folder (rank 0 of a data-parallel run; the other ranks only read it).</param>
    public static (Cleared? Run, int Code, string? Error) Check(ExperimentConfig config, IReadOnlySet<string> given, bool claim = true)
    {
        var changes = new List<string>();
        if (config.Resume)
        {
            var (merged, code, error) = Continue(config, given, changes);
            if (merged is null)
            {
                return (null, code, error);
            }

            config = merged;
        }

        Device device;
        try
        {
            device = TrainingDevice.Choose(config.Device);
        }
        catch (NotSupportedException ex)
        {
            return (null, Sample.BadArguments, "--" + ex.Message);
        }

        var folder = new RunFolder(config.RunDirectory);
        if (CheckFolder(config, folder) is { } refused)
        {
            return (null, refused.Code, refused.Message);
        }

        var existing = folder.ExistingRun();
        if (!config.Resume && !config.Overwrite && existing.Count > 0)
        {
            return (null, Sample.BadArguments,
                $"'{folder.Path}' already holds a run ({string.Join(", ", existing)}): continue it with --resume, choose another --experiments-name, or start afresh with --overwrite (the old run is moved aside, not deleted).");
        }

        // One training per folder, from here to the end (the lock dies with the process).
        try
        {
            return (new Cleared(config, changes, device, folder, claim ? folder.Take() : null, existing), Sample.Ok, null);
        }
        catch (RunFolderInUseException ex)
        {
            return (null, Sample.InUse, ex.Message);
        }
    }

    /// <summary>A resumed run is the run's own configuration with what the command line changes.</summary>
    private static (ExperimentConfig? Config, int Code, string? Error) Continue(ExperimentConfig config, IReadOnlySet<string> given, List<string> changes)
    {
        var (located, notFound) = RunContinuation.Locate(config);
        if (located is null)
        {
            return (null, Sample.BadArguments, notFound);
        }

        ExperimentConfig saved;
        try
        {
            saved = ExperimentOutputs.ReadConfig(located);
        }
        catch (Exception ex) when (ex is IOException or System.Text.Json.JsonException or InvalidDataException)
        {
            return (null, Sample.Failed, $"cannot resume '{located}': its config.json cannot be read ({ex.Message}).");
        }

        var (merged, applied, refused) = RunContinuation.Merge(saved, config, given, located);
        if (merged is null)
        {
            return (null, Sample.BadArguments, refused);
        }

        changes.AddRange(applied);
        return (merged, Sample.Ok, null);
    }

    private static (int Code, string Message)? CheckFolder(ExperimentConfig config, RunFolder folder)
    {
        if (folder.WhyNotWritable() is { } notWritable)
        {
            return (Sample.BadArguments, $"--experiments-dir '{config.ExperimentsDir}' cannot hold the run '{folder.Path}': {notWritable}.");
        }

        if (!config.Resume)
        {
            return null;
        }

        if (!File.Exists(folder.LastCheckpoint))
        {
            return (Sample.BadArguments, $"--resume: '{folder.LastCheckpoint}' does not exist (the run never finished an epoch or saved on a stop).");
        }

        try
        {
            var done = TrainerCheckpoint.ReadSummary(folder.LastCheckpoint);
            var least = done.EpochsDone + (done.StepsDone > 0 ? 1 : 0);
            return config.Epochs < least
                ? (Sample.BadArguments, $"--epochs {config.Epochs}: the run has already trained {done.EpochsDone} epochs{(done.StepsDone > 0 ? $" and {done.StepsDone} steps of the next" : string.Empty)}; give at least {least}.")
                : null;
        }
        catch (InvalidDataException ex)
        {
            return (Sample.Failed, $"cannot resume from '{folder.LastCheckpoint}': {ex.Message}");
        }
    }
}
