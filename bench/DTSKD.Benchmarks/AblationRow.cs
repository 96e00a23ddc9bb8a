using System.Globalization;
using System.Text.RegularExpressions;
using DTSKD.Core;
using static TorchSharp.torch;

namespace DTSKD.Benchmarks;

/// <summary>
/// One row of an ablation: a base objective by key, and for the DTSKD family, overrides of <see cref="DualTeacherLossOptions"/>
/// written in brackets after the key, for example <c>dtskd[t2=off;warmup=10]</c>.
/// </summary>
public sealed partial record AblationRow(string Key, string Description, Func<IMultiBranchModel, int, Device, IMultiBranchObjective> Build)
{
    /// <summary>The overrides a DTSKD row accepts.</summary>
    public const string OverrideHelp =
        "detach, t2=on|off, warmup=<epochs>, t=<temperature>, ce=<w_ce>, kd=<w_kd>, history=dense|top<k>, history-host";

    private static readonly (string Key, string Description, Func<IMultiBranchModel, int, Device, IMultiBranchObjective>? Fixed, Action<DualTeacherLossOptions>? Dtskd)[] Bases =
    [
        ("ce", "cross-entropy on the backbone head; branches untrained", (m, n, d) => CrossEntropyObjective.BackboneOnly(m), null),
        ("ce-all", "cross-entropy on every head, weight 1 each", (m, n, d) => CrossEntropyObjective.AllHeads(m), null),
        ("structural", "the reference's --HSKD 0: 0.2 CE(backbone) + 0.8 sum KD(branch, backbone)", null, o => o.UseHistoricalTeacher = false),
        ("historical", "soft targets on every head (weights 3/1/1/1, x0.2), no KD", null, o => o.KdWeight = 0),
        ("dtskd", "the recipe: historical on every head + structural KD (T = 4, x T²)", null, _ => { }),
        ("pskd", "historical teacher on the backbone only (branch weights 0, no KD)", null, o => { o.BranchWeights = [0, 0, 0]; o.KdWeight = 0; }),
        ("structural-detached", "as `structural`, with the backbone a fixed target in the KD terms", null, o => { o.UseHistoricalTeacher = false; o.DetachBackbone = true; }),
        ("dtskd-detached", "the recipe, with the backbone a fixed target in the KD terms", null, o => o.DetachBackbone = true),
    ];

    /// <summary>The base keys.</summary>
    public static IEnumerable<string> Keys => Bases.Select(b => b.Key);

    /// <summary>Parses a comma-separated list of rows (commas inside brackets belong to the row).</summary>
    /// <exception cref="ArgumentException">A key or an override is unknown; the message lists the known ones.</exception>
    public static List<AblationRow> ParseList(string text) =>
        [.. RowPattern().Matches(text).Select(m => Parse(m.Value.Trim())).Where(r => r is not null).Select(r => r!)];

    private static AblationRow? Parse(string spec)
    {
        if (spec.Length == 0)
        {
            return null;
        }

        var open = spec.IndexOf('[', StringComparison.Ordinal);
        var key = open < 0 ? spec : spec[..open];
        var overrides = open < 0 ? [] : spec[(open + 1)..].TrimEnd(']').Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var index = Array.FindIndex(Bases, b => b.Key == key);
        if (index < 0)
        {
            throw new ArgumentException($"unknown row '{key}'; known rows: {string.Join(", ", Keys)}.");
        }

        var (_, description, fixedBuild, dtskd) = Bases[index];
        if (fixedBuild is not null)
        {
            return overrides.Length == 0 ? new AblationRow(key, description, fixedBuild) : throw new ArgumentException($"row '{key}' takes no overrides.");
        }

        var edits = overrides.Select(ParseOverride).ToList();
        var text = edits.Count == 0 ? description : description + "; changed: " + string.Join(", ", edits.Select(e => e.Text));
        return new AblationRow(spec, text, (model, n, device) =>
        {
            var options = new DualTeacherLossOptions();
            dtskd!(options);
            edits.ForEach(e => e.Apply(options));
            return DualTeacherLoss.For(model, n, options, device);
        });
    }

    private static (string Text, Action<DualTeacherLossOptions> Apply) ParseOverride(string item)
    {
        var parts = item.Split('=', 2, StringSplitOptions.TrimEntries);
        var (name, value) = (parts[0], parts.Length > 1 ? parts[1] : null);
        double Number() => double.Parse(value ?? throw new ArgumentException($"override '{name}' needs a value."), CultureInfo.InvariantCulture);
        return name switch
        {
            "detach" => ("backbone detached in KD", o => o.DetachBackbone = true),
            "t2" when value is "off" => ("KD without the T² factor", o => o.ScaleKdByTemperatureSquared = false),
            "t2" when value is "on" => ("KD with the T² factor", o => o.ScaleKdByTemperatureSquared = true),
            "warmup" => ($"KD weight ramped from 0 over {Number()} epochs", o => o.KdWarmupEpochs = (int)Number()),
            "t" => ($"T = {Number()}", o => o.Temperature = Number()),
            "ce" => ($"w_ce = {Number()}", o => o.CeWeight = Number()),
            "kd" => ($"w_kd = {Number()}", o => o.KdWeight = Number()),
            "history" when value == "dense" => ("dense history", o => o.History = o.History with { TopK = null }),
            "history" when value?.StartsWith("top", StringComparison.Ordinal) == true =>
                ($"history top-{value[3..]} in float16", o => o.History = o.History with { TopK = int.Parse(value[3..], CultureInfo.InvariantCulture), ValueType = ScalarType.Float16 }),
            "history-host" => ("history in host memory", o => o.History = o.History with { OnHost = true }),
            _ => throw new ArgumentException($"unknown override '{item}'; known: {OverrideHelp}."),
        };
    }

    [GeneratedRegex(@"[^,\[]+(\[[^\]]*\])?")]
    private static partial Regex RowPattern();
}
