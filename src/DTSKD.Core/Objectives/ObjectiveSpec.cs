using System.Globalization;
using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// An objective by name: a base key (<c>ce</c>, <c>historical</c>, <c>dtskd</c>, ...; see <see cref="Keys"/>) and, for the
/// DTSKD family, overrides of <see cref="DualTeacherLossOptions"/> in brackets, for example <c>dtskd[t2=off;warmup=10]</c>.
/// The sample's <c>--objective</c> and the benchmarks' ablation rows are both parsed here, so a name means the same
/// objective everywhere.
/// </summary>
public sealed partial class ObjectiveSpec
{
    /// <summary>The overrides a DTSKD-family objective accepts.</summary>
    public const string OverrideHelp =
        "detach, t2=on|off, warmup=<epochs>, teachers=<epoch>, t=<temperature>, ce=<w_ce>, kd=<w_kd>, history=dense|top<k>, history-host";

    /// <summary>Label smoothing on the backbone head (<c>ls</c>, <c>ls[eps=0.2]</c>).</summary>
    public const string LabelSmoothingKey = "ls";

    /// <summary>The paper's recipe, the default objective.</summary>
    public const string Recipe = "dtskd";

    private static readonly Base[] Bases =
    [
        new("ce", "cross-entropy on the backbone head; branches untrained", (m, validate) => CrossEntropy(m, 0, validate)),
        new("ce-all", "cross-entropy on every head, weight 1 each", (m, validate) => CrossEntropy(m, 1, validate)),
        new(LabelSmoothingKey, "label smoothing (ε 0.1) on the backbone head: the free regulariser self-distillation is compared with; branches untrained", (m, validate) => CrossEntropy(m, 0, validate)),
        new("structural", "the reference's --HSKD 0: w_ce CE(backbone) + w_kd sum KD(branch, backbone)", (o, _) => o.UseHistoricalTeacher = false),
        new("historical", "soft targets of the historical teacher on every head, no KD", (o, _) => o.StructuralWeight = 0),
        new(Recipe, "the recipe: historical teacher on every head + structural KD (T = 4, x T²)", (_, _) => { }),
        new("pskd", "historical teacher on the backbone only (branch weights 0, no KD)", (o, k) => { o.BranchWeights = [.. Enumerable.Repeat(0.0, k)]; o.StructuralWeight = 0; }),
        new("structural-detached", "as `structural`, with the backbone a fixed target in the KD terms", (o, _) => { o.UseHistoricalTeacher = false; o.DetachBackbone = true; }),
        new("dtskd-detached", "the recipe, with the backbone a fixed target in the KD terms", (o, _) => o.DetachBackbone = true),
    ];

    private readonly Base _base;
    private readonly IReadOnlyList<Override> _overrides;
    private readonly double _smoothing;

    private ObjectiveSpec(Base @base, IReadOnlyList<Override> overrides, double smoothing = 0, string? smoothingSource = null)
    {
        _base = @base;
        _overrides = overrides;
        _smoothing = smoothing;
        string[] sources = [.. overrides.Select(o => o.Source), .. smoothingSource is null ? [] : new[] { smoothingSource }];
        Text = sources.Length == 0 ? @base.Key : $"{@base.Key}[{string.Join(";", sources)}]";
        Description = overrides.Count > 0 ? @base.Description + "; changed: " + string.Join(", ", overrides.Select(o => o.Description))
            : smoothingSource is not null ? @base.Description.Replace("(ε 0.1)", $"(ε {smoothing.ToString(CultureInfo.InvariantCulture)})", StringComparison.Ordinal)
            : @base.Description;
    }

    /// <summary>The base keys, in the order of a full ablation.</summary>
    public static IReadOnlyList<string> Keys { get; } = [.. Bases.Select(b => b.Key)];

    /// <summary>The base key, for example <c>dtskd</c>.</summary>
    public string Key => _base.Key;

    /// <summary>The spec as written, whitespace removed, for example <c>dtskd[t2=off;warmup=10]</c>.</summary>
    public string Text { get; }

    /// <summary>What the objective trains, in a sentence fragment, with the overrides spelled out.</summary>
    public string Description { get; }

    /// <summary>Whether this is the recipe unchanged.</summary>
    public bool IsRecipe => Text == Recipe;

    /// <summary>
    /// <see cref="Text"/> as a file or folder name: brackets, semicolons and equals signs become <c>_</c> and <c>-</c>
    /// (<c>dtskd[t2=off;warmup=10]</c> is <c>dtskd_t2-off_warmup-10</c>).
    /// </summary>
    public string FileName => Text.Replace("[", "_", StringComparison.Ordinal).Replace("]", string.Empty, StringComparison.Ordinal)
        .Replace(";", "_", StringComparison.Ordinal).Replace("=", "-", StringComparison.Ordinal);

    /// <summary>Parses one spec.</summary>
    /// <param name="text">A key, optionally followed by <c>[override;override...]</c>.</param>
    /// <exception cref="ArgumentException">The key or an override is unknown or malformed; the message lists the known ones.</exception>
    public static ObjectiveSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var spec = string.Concat(text.Where(c => !char.IsWhiteSpace(c)));
        var open = spec.IndexOf('[', StringComparison.Ordinal);
        if (open >= 0 && !spec.EndsWith(']'))
        {
            throw new ArgumentException($"objective '{text}' opens a bracket it does not close; write key[override;override].", nameof(text));
        }

        var key = open < 0 ? spec : spec[..open];
        var @base = Array.Find(Bases, b => b.Key == key)
            ?? throw new ArgumentException($"unknown objective '{key}'; known objectives: {string.Join(", ", Keys)}.", nameof(text));
        var overrides = open < 0 ? [] : spec[(open + 1)..^1].Split(';', StringSplitOptions.RemoveEmptyEntries);
        if (@base.Key == LabelSmoothingKey)
        {
            return LabelSmoothing(@base, overrides);
        }

        if (overrides.Length > 0 && @base.Fixed is not null)
        {
            throw new ArgumentException($"objective '{key}' takes no overrides; only the DTSKD family does ({OverrideHelp}).", nameof(text));
        }

        return new ObjectiveSpec(@base, [.. overrides.Select(ParseOverride)]);
    }

    /// <summary>Parses a comma-separated list of specs (commas inside brackets belong to their spec).</summary>
    /// <param name="text">For example <c>ce,dtskd,dtskd[t2=off;warmup=10]</c>.</param>
    /// <exception cref="ArgumentException">A spec is malformed, or the list is empty.</exception>
    public static IReadOnlyList<ObjectiveSpec> ParseList(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        List<ObjectiveSpec> specs = [.. ListPattern().Matches(text).Select(m => m.Value.Trim()).Where(s => s.Length > 0).Select(Parse)];
        return specs.Count > 0 ? specs : throw new ArgumentException("the list names no objective.", nameof(text));
    }

    /// <summary>
    /// The DTSKD options this spec trains a model of <paramref name="branchCount"/> branches with: a copy of
    /// <paramref name="template"/> (the recipe when null), changed by the base key and then by the overrides; null for the
    /// cross-entropy objectives.
    /// </summary>
    internal DualTeacherLossOptions? LossOptions(int branchCount, DualTeacherLossOptions? template = null)
    {
        if (_base.Fixed is not null)
        {
            return null;
        }

        var options = template?.Clone() ?? new DualTeacherLossOptions();
        _base.Edit!(options, branchCount);
        foreach (var edit in _overrides)
        {
            edit.Apply(options);
        }

        return options;
    }

    /// <summary>Creates the objective for a model and its training set.</summary>
    /// <param name="model">The model to train.</param>
    /// <param name="sampleCount">N, the size of the training set (the historical teacher keeps a row per sample).</param>
    /// <param name="device">The training device (default: CPU).</param>
    /// <param name="template">For the DTSKD family, the options to start from, for example the ones a command line built
    /// (the recipe when null; not changed): the base key and then the overrides change a copy. The cross-entropy objectives
    /// take only its <see cref="DualTeacherLossOptions.ValidateInputs"/>.</param>
    /// <returns>The objective; a <see cref="DualTeacherLoss"/> is <see cref="IDisposable"/> and the caller disposes it.</returns>
    public IMultiBranchObjective Create(IMultiBranchModel model, int sampleCount, Device? device = null, DualTeacherLossOptions? template = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (_base.Key == LabelSmoothingKey)
        {
            return new CrossEntropyObjective([1.0, .. Enumerable.Repeat(0.0, model.BranchCount)], model.ClassCount)
            {
                LabelSmoothing = _smoothing, ValidateInputs = template?.ValidateInputs ?? true,
            };
        }

        if (_base.Fixed is { } build)
        {
            return build(model, template?.ValidateInputs ?? true);
        }

        return DualTeacherLoss.For(model, sampleCount, LossOptions(model.BranchCount, template), device);
    }

    /// <summary>The spec's <see cref="Text"/>.</summary>
    public override string ToString() => Text;

    /// <summary><c>ls</c>, or <c>ls[eps=ε]</c> with ε in (0, 1).</summary>
    private static ObjectiveSpec LabelSmoothing(Base @base, string[] overrides)
    {
        if (overrides.Length == 0)
        {
            return new ObjectiveSpec(@base, [], CrossEntropyObjective.RecipeLabelSmoothing);
        }

        var item = overrides.Length == 1 ? overrides[0] : throw new ArgumentException($"objective '{LabelSmoothingKey}' takes one override, eps=<ε>; got {string.Join(";", overrides)}.");
        return item.StartsWith("eps=", StringComparison.Ordinal)
            && double.TryParse(item[4..], NumberStyles.Float, CultureInfo.InvariantCulture, out var eps) && eps > 0 && eps < 1
            ? new ObjectiveSpec(@base, [], eps, item)
            : throw new ArgumentException($"objective '{LabelSmoothingKey}' takes eps=<ε> with ε in (0, 1), as in ls[eps=0.2]; got '{item}'.");
    }

    private static Override ParseOverride(string item)
    {
        var parts = item.Split('=', 2);
        var (name, value) = (parts[0], parts.Length > 1 ? parts[1] : null);
        double Number()
        {
            return double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) && double.IsFinite(number)
                ? number
                : throw new ArgumentException($"override '{item}' needs a number ({name}=<value>).");
        }

        int Count()
        {
            return int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var count)
                ? count
                : throw new ArgumentException($"override '{item}' needs a whole number >= 0 ({name}=<n>).");
        }

        return name switch
        {
            "detach" when value is null => new(item, "backbone detached in KD", o => o.DetachBackbone = true),
            "t2" when value is "off" => new(item, "KD without the T² factor", o => o.ScaleKdByTemperatureSquared = false),
            "t2" when value is "on" => new(item, "KD with the T² factor", o => o.ScaleKdByTemperatureSquared = true),
            "warmup" => Ramp(Count()),
            "teachers" => Teachers(Count()),
            "t" => Weight(Number(), v => $"T = {v}", (o, v) => o.Temperature = v),
            "ce" => Weight(Number(), v => $"w_ce = {v}", (o, v) => o.HistoricalWeight = v),
            "kd" => Weight(Number(), v => $"w_kd = {v}", (o, v) => o.StructuralWeight = v),
            "history" when value == "dense" => new(item, "dense history", o => o.History = o.History with { TopK = null }),
            "history" when value?.StartsWith("top", StringComparison.Ordinal) == true
                && int.TryParse(value[3..], NumberStyles.None, CultureInfo.InvariantCulture, out var k) && k > 0 =>
                new(item, $"history top-{k} in float16", o => o.History = o.History with { TopK = k, ValueType = ScalarType.Float16 }),
            "history-host" when value is null => new(item, "history in host memory", o => o.History = o.History with { OnHost = true }),
            _ => throw new ArgumentException($"unknown override '{item}'; known: {OverrideHelp}."),
        };

        Override Ramp(int epochs) => new(item, $"KD weight ramped from 0 over {epochs} epochs", o => o.StructuralWarmupEpochs = epochs);

        Override Teachers(int epoch) => new(item, $"hard labels alone before epoch {epoch} (0-based), the teachers from it", o => o.TeachersFromEpoch = epoch);

        Override Weight(double v, Func<string, string> describe, Action<DualTeacherLossOptions, double> apply) =>
            new(item, describe(v.ToString(CultureInfo.InvariantCulture)), o => apply(o, v));
    }

    private static CrossEntropyObjective CrossEntropy(IMultiBranchModel model, double branchWeight, bool validate) =>
        new([1.0, .. Enumerable.Repeat(branchWeight, model.BranchCount)], model.ClassCount) { ValidateInputs = validate };

    [GeneratedRegex(@"[^,\[]+(\[[^\]]*\])?")]
    private static partial Regex ListPattern();

    private sealed record Base(string Key, string Description, Func<IMultiBranchModel, bool, IMultiBranchObjective>? Fixed, Action<DualTeacherLossOptions, int>? Edit)
    {
        public Base(string key, string description, Func<IMultiBranchModel, bool, IMultiBranchObjective> build)
            : this(key, description, build, null)
        {
        }

        public Base(string key, string description, Action<DualTeacherLossOptions, int> edit)
            : this(key, description, null, edit)
        {
        }
    }

    private sealed record Override(string Source, string Description, Action<DualTeacherLossOptions> Apply);
}
