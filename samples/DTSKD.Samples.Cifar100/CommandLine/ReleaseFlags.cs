using System.Globalization;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// The release's own command line (<c>main.py</c>'s flags, as its README trains with them) read as the sample's: each
/// flag in its own spelling (<c>--lr_decay_schedule</c>, <c>--HSKD</c>, <c>--end_epoch</c>...) is an alias of the sample's
/// option (<see cref="AliasesOf"/>); here only what takes code: the README's model name <c>resnet18_dtkd</c> becomes
/// <c>resnet18_dtskd</c>, and the flags that mean nothing in one .NET process are taken with a note saying what is used
/// instead, or refused with a pointer.
/// </summary>
internal static class ReleaseFlags
{
    /// <summary>The release's spelling → the sample's option (System.CommandLine aliases).</summary>
    private static readonly Dictionary<string, string> Renamed = new(StringComparer.Ordinal)
    {
        ["--lr_decay_rate"] = "--lr-decay-rate",
        ["--lr_decay_schedule"] = "--lr-decay-schedule",
        ["--weight_decay"] = "--weight-decay",
        ["--end_epoch"] = "--epochs",
        ["--backbone_weight"] = "--backbone-weight",
        ["--b1_weight"] = "--b1-weight",
        ["--b2_weight"] = "--b2-weight",
        ["--b3_weight"] = "--b3-weight",
        ["--ce_weight"] = "--ce-weight",
        ["--kd_weight"] = "--kd-weight",
        ["--coeff_decay"] = "--coeff-decay",
        ["--cos_max"] = "--cos-max",
        ["--cos_min"] = "--cos-min",
        ["--HSKD"] = "--hskd",
        ["--batch_size"] = "--batch-size",
        ["--experiments_dir"] = "--experiments-dir",
        ["--experiments_name"] = "--experiments-name",
        ["--classifier_type"] = "--classifier-type",
        ["--data_path"] = "--data-path",
        ["--data_type"] = "--data-type",
        ["--alpha_T"] = "--alpha-t",
        ["--random_seed"] = "--seed",
    };

    /// <summary>The release's spellings of one of the sample's options.</summary>
    public static IEnumerable<string> AliasesOf(string option) => Renamed.Where(r => r.Value == option).Select(r => r.Key);

    /// <summary>The release's model names that the sample spells otherwise.</summary>
    private static readonly Dictionary<string, string> Models = new(StringComparer.OrdinalIgnoreCase)
    {
        ["resnet18_dtkd"] = "resnet18_dtskd",
    };

    /// <summary>
    /// A flag given more than once with different values (in either spelling: <c>--lr_decay_schedule 150 225
    /// --lr-decay-schedule 10</c>, <c>--tsne 1 --tsne 0</c>, <c>--lr 0.05 --lr=</c>) is one line; the same values given
    /// again are one value (the repeat is left out). Each flag's values are the tokens up to the next flag.
    /// </summary>
    /// <returns>The arguments with repeats left out, or the error.</returns>
    public static (string[] Args, string? Error) Repeated(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var seen = new Dictionary<string, (string Flag, string Values)>(StringComparer.Ordinal);
        var kept = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || args[i] == "--")
            {
                kept.Add(args[i]);
                continue;
            }

            var start = i;
            var (flag, inline) = Split(args[i]);
            var values = new List<string>();
            if (inline is not null)
            {
                values.Add(inline);
            }

            while (inline is null && i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                values.Add(args[++i]);
            }

            var name = Renamed.GetValueOrDefault(flag, flag);

            // The sample's --tsne switch is the release's --tsne 1.
            var text = name == "--tsne" && values.Count == 0 ? "1" : values is [""] ? "''" : string.Join(' ', values);
            if (seen.TryGetValue(name, out var first))
            {
                if (first.Values != text)
                {
                    static string Shown(string f, string v) => v.Length == 0 ? f : $"{f} {v}";
                    return ([], $"{flag} is given twice, as '{Shown(first.Flag, first.Values)}' and '{Shown(flag, text)}': give it once{(values.Count > 1 || first.Values.Contains(' ', StringComparison.Ordinal) ? ", with all its values" : "")}.");
                }

                continue;
            }

            seen.Add(name, (flag, text));
            kept.AddRange(args[start..(i + 1)]);
        }

        return ([.. kept], null);
    }

    /// <summary>Rewrites the release's flags into the sample's; returns the notes to print, or the one-line refusal.</summary>
    public static (string[] Args, IReadOnlyList<string> Notes, string? Error) Translate(string[] args)
    {
        var output = new List<string>();
        var notes = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            var (flag, inline) = Split(args[i]);
            string? Value() => inline ?? (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : null);
            // The sample's own --tsne is a switch; the release's takes 0 or 1.
            if (flag == "--tsne" && inline is null && (i + 1 == args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal)))
            {
                output.Add(flag);
                continue;
            }

            var error = flag switch
            {
                "--start_epoch" => StartEpoch(Value()),
                "--saveckp_freq" => Note(notes, Value(), "--saveckp_freq: not used; every epoch's last.ckpt and the best epoch's best.ckpt are written into the run folder."),
                "--workers" => Note(notes, Value(), "--workers: not used; images are decoded by the sample's own threads and batches gathered on the training device (--threads sets LibTorch's CPU threads)."),
                "--dist_backend" or "--dist_url" => Note(notes, Value(), $"{flag}: not used; the ranks of a data-parallel run meet through MPI, as the launcher (mpirun, srun) started them (docs/scaling.md)."),
                "--multiprocessing_distributed" => Note(notes, "", "--multiprocessing_distributed: not used; start one sample per rank with mpirun -np N or srun (docs/scaling.md)."),
                "--rank" => Rank(Value(), output),
                "--world_size" => WorldSize(Value(), output, notes),
                "--tsne" => Tsne(Value()),
                _ => null,
            };
            if (error is not null)
            {
                return ([], notes, error);
            }

            if (!IsRelease(flag))
            {
                output.Add(args[i]);
            }
            else if (flag == "--tsne" && (inline ?? args[i]) == "1")
            {
                output.Add("--tsne");
            }
        }

        for (var i = 0; i < output.Count; i++)
        {
            var (flag, inline) = Split(output[i]);
            var name = inline ?? (i + 1 < output.Count ? output[i + 1] : "");
            if (Renamed.GetValueOrDefault(flag, flag) == "--classifier-type" && Models.TryGetValue(name, out var model))
            {
                notes.Add($"--classifier_type {name}: the release's README spelling of {model}; training {model}.");
                if (inline is null)
                {
                    output[i + 1] = model;
                }
                else
                {
                    output[i] = $"{flag}={model}";
                }
            }
        }

        return ([.. output], notes, null);
    }

    private static bool IsRelease(string flag) =>
        flag is "--start_epoch" or "--saveckp_freq" or "--workers" or "--dist_backend" or "--dist_url" or "--multiprocessing_distributed" or "--rank" or "--world_size" or "--tsne";

    private static (string Flag, string? Inline) Split(string arg)
    {
        var eq = arg.StartsWith("--", StringComparison.Ordinal) ? arg.IndexOf('=', StringComparison.Ordinal) : -1;
        return eq > 0 ? (arg[..eq], arg[(eq + 1)..]) : (arg, null);
    }

    private static string? Note(List<string> notes, string? value, string note)
    {
        if (value is null)
        {
            return $"{note.Split(':')[0]} needs a value.";
        }

        notes.Add(note);
        return null;
    }

    private static string? StartEpoch(string? value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var epoch) && epoch == 0
            ? null
            : $"--start_epoch {value}: a run continues from its checkpoint with --resume (the epoch is the checkpoint's); only --start_epoch 0 is taken.";

    /// <summary>The release's --rank (-1: not distributed) is the sample's --rank, checked against the launcher's.</summary>
    private static string? Rank(string? value, List<string> output)
    {
        if (!int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var rank) || rank < -1)
        {
            return $"--rank {value}: a rank from 0 (or the release's -1, not distributed).";
        }

        if (rank >= 0)
        {
            output.AddRange(["--rank", value!]);
        }

        return null;
    }

    /// <summary>The release's --world_size (-1: not distributed) is the sample's --world-size, checked against the launcher's.</summary>
    private static string? WorldSize(string? value, List<string> output, List<string> notes)
    {
        if (!int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var size) || size is 0 or < -1)
        {
            return $"--world_size {value}: a number of processes from 1 (or the release's -1, not distributed).";
        }

        if (size >= 1)
        {
            output.AddRange(["--world-size", value!]);
        }

        if (size > 1)
        {
            notes.Add($"--world_size {size}: the sample's --world-size {size}; one sample per rank, started by the launcher (mpirun -np {size}, srun; docs/scaling.md), --batch-size split over them as the release splits it over its GPUs.");
        }

        return null;
    }

    private static string? Tsne(string? value) =>
        value is "0" or "1" ? null : $"--tsne {value}: 0 or 1 (1 keeps the best epoch's test outputs and draws their t-SNE map).";
}
