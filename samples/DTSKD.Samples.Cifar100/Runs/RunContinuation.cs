using System.Globalization;
using System.Reflection;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// What <c>--resume</c> continues: the run folder, and the configuration of the continued run, which is the run's own
/// config.json with the options the command line gives explicitly applied on top. Options that would make it another
/// run are refused.
/// </summary>
public static class RunContinuation
{
    /// <summary>Options that decide what the run is: changing them on resume is refused.</summary>
    private static readonly string[] Identity = ["--classifier-type", "--data-type", "--base-width", "--neck-width", "--train-limit", "--test-limit", "--seed", "--objective", "--hskd", "--image-size", "--channels", "--stem", "--pretrained", "--freeze", "--branch-points", "--branches"];

    /// <summary>Options that describe this invocation, not the run.</summary>
    private static readonly string[] Invocation = ["--resume", "--overwrite", "--experiments-dir", "--experiments-name", "--no-download", "--image-cache", "--rank", "--world-size"];

    /// <summary>
    /// The folder of the run to continue: the one <c>--resume</c> names; else the one the options name; else, when the
    /// options name a run that does not exist, the one run in the experiments folder that differs from it only in its
    /// number of epochs (the default name holds the epoch count, and continuing a run for more epochs is the usual resume).
    /// </summary>
    /// <returns>The folder, or null and one line saying why none was found.</returns>
    public static (string? Folder, string? Error) Locate(ExperimentConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.ResumeFrom is { } named)
        {
            return Directory.Exists(named) && File.Exists(Path.Combine(named, "config.json"))
                ? (named, null)
                : (null, $"--resume '{named}' is not a run folder (it has no config.json): give the folder training wrote.");
        }

        if (File.Exists(Path.Combine(config.RunDirectory, "config.json")))
        {
            return (config.RunDirectory, null);
        }

        var candidates = !Directory.Exists(config.ExperimentsDir)
            ? []
            : Directory.GetDirectories(config.ExperimentsDir)
                .Where(d => File.Exists(Path.Combine(d, "config.json")))
                .Where(d => SameRunButEpochs(d, config))
                .Order(StringComparer.Ordinal)
                .ToList();
        return candidates.Count switch
        {
            1 => (candidates[0], null),
            0 => (null, $"--resume: there is no run '{config.RunDirectory}' to continue (no config.json there); give the run's folder: --resume <folder>."),
            _ => (null, $"--resume: {candidates.Count} runs match ({string.Join(", ", candidates.Select(Path.GetFileName))}); give one: --resume <folder>."),
        };
    }

    /// <summary>
    /// The continued run's configuration: <paramref name="saved"/> (the run's config.json) with every option in
    /// <paramref name="given"/> taken from <paramref name="command"/>, and the changes as lines to show.
    /// </summary>
    /// <returns>The configuration and the changes, or one line naming a refused change.</returns>
    public static (ExperimentConfig? Config, IReadOnlyList<string> Changes, string? Error) Merge(
        ExperimentConfig saved, ExperimentConfig command, IReadOnlySet<string> given, string folder)
    {
        ArgumentNullException.ThrowIfNull(saved);
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(given);
        var merged = saved with
        {
            Resume = true,
            ResumeFrom = command.ResumeFrom,
            Overwrite = false,
            ExperimentsDir = Path.GetDirectoryName(Path.GetFullPath(folder))!,
            ExperimentsName = Path.GetFileName(Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar)),

            // A run continues in the format it trained in, unless --precision says otherwise (and then it is checked below).
            Precision = saved.PrecisionUsed is { } used ? PrecisionOption(used) : saved.Precision,
        };
        var changes = new List<string>();
        foreach (var option in given.Where(o => !Invocation.Contains(o)).Order(StringComparer.Ordinal))
        {
            var property = PropertyOf(option);
            var (then, now) = (Text(property.GetValue(merged)), Text(property.GetValue(command)));
            if (then == now)
            {
                continue;
            }

            if (Identity.Contains(option) || option == "--precision")
            {
                return (null, [], $"--resume cannot change {option} (the run has {then}, the command line {now}): that would be another run; start one with another --experiments-name.");
            }

            merged = With(merged, property, property.GetValue(command));
            changes.Add($"{option} {now} (the run had {then})");
        }

        return (merged, changes, null);
    }

    /// <summary>The option value a precision the run used is written as.</summary>
    private static string PrecisionOption(string used) => used switch
    {
        "BFloat16" => "bf16",
        "Float16" => "fp16",
        _ => "fp32",
    };

    private static bool SameRunButEpochs(string folder, ExperimentConfig config)
    {
        try
        {
            var saved = ExperimentOutputs.ReadConfig(folder) with { ExperimentsName = null };
            return Path.GetFileName(folder) == saved.ResolvedName && (saved with { Epochs = config.Epochs }).ResolvedName == config.ResolvedName;
        }
        catch (Exception ex) when (ex is IOException or System.Text.Json.JsonException or InvalidDataException)
        {
            return false;
        }
    }

    /// <summary>The configuration property an option sets: <c>--lr-decay-rate</c> is <c>LrDecayRate</c>, <c>--no-tf32</c> is <c>Tf32</c>.</summary>
    private static PropertyInfo PropertyOf(string option)
    {
        var name = option.TrimStart('-');
        if (name.StartsWith("no-", StringComparison.Ordinal))
        {
            name = name[3..];
        }

        var pascal = string.Concat(name.Split('-').Select(p => char.ToUpperInvariant(p[0]) + p[1..]));
        return typeof(ExperimentConfig).GetProperty(pascal == "Tensorboard" ? "TensorBoard" : pascal)
               ?? throw new InvalidOperationException($"The option {option} has no ExperimentConfig property.");
    }

    private static ExperimentConfig With(ExperimentConfig config, PropertyInfo property, object? value)
    {
        var copy = config with { };
        property.SetValue(copy, value);
        return copy;
    }

    private static string Text(object? value) => value switch
    {
        null => "(none)",
        int[] list => string.Join(" ", list),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? string.Empty,
    };
}
