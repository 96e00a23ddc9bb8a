using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// The baseline objective: a weighted sum of hard-label cross-entropies over the heads,
/// <c>L = Σ_h w_h · CE(z_h, y)</c>, optionally with label smoothing (<see cref="LabelSmoothing"/>, the free regulariser every
/// self-distillation paper compares with). Heads with weight 0 are left out.
/// </summary>
public sealed class CrossEntropyObjective : IMultiBranchObjective
{
    private readonly double[] _weights;

    /// <summary>Creates the objective.</summary>
    /// <param name="headWeights">One weight per head, backbone first; each finite and &gt;= 0, at least one &gt; 0.</param>
    /// <param name="classCount">C, the number of classes of every head.</param>
    public CrossEntropyObjective(IReadOnlyList<double> headWeights, int classCount)
    {
        ArgumentNullException.ThrowIfNull(headWeights);
        ArgumentOutOfRangeException.ThrowIfLessThan(classCount, 2);
        if (headWeights.Count < 2 || headWeights.Any(w => !(w >= 0) || double.IsInfinity(w)) || headWeights.All(w => w == 0))
        {
            throw new ArgumentException("headWeights must hold one finite weight >= 0 per head (backbone first, then at least one branch), at least one of them > 0.", nameof(headWeights));
        }

        _weights = [.. headWeights];
        ClassCount = classCount;
    }

    /// <summary>Cross-entropy on the backbone head only (the plain baseline).</summary>
    /// <param name="model">The model to train.</param>
    public static CrossEntropyObjective BackboneOnly(IMultiBranchModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new([1.0, .. Enumerable.Repeat(0.0, model.BranchCount)], model.ClassCount);
    }

    /// <summary>Cross-entropy on every head with weight 1.</summary>
    /// <param name="model">The model to train.</param>
    public static CrossEntropyObjective AllHeads(IMultiBranchModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new([.. Enumerable.Repeat(1.0, model.BranchCount + 1)], model.ClassCount);
    }

    /// <summary>Label smoothing on the backbone head only (the baseline self-distillation papers report), <paramref name="smoothing"/> as ε.</summary>
    /// <param name="model">The model to train.</param>
    /// <param name="smoothing">ε in [0, 1): the target is 1 − ε on the label plus ε spread over all classes.</param>
    public static CrossEntropyObjective LabelSmoothed(IMultiBranchModel model, double smoothing = RecipeLabelSmoothing)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new([1.0, .. Enumerable.Repeat(0.0, model.BranchCount)], model.ClassCount) { LabelSmoothing = smoothing };
    }

    /// <summary>The usual ε of label smoothing (Szegedy et al., 2016; PyTorch's recipes): 0.1.</summary>
    public const double RecipeLabelSmoothing = 0.1;

    /// <summary>
    /// ε of label smoothing, in [0, 1): each head's target is 1 − ε on the label plus ε / C on every class, as PyTorch's
    /// <c>cross_entropy(label_smoothing=ε)</c>; 0 (default) for plain cross-entropy.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Not in [0, 1).</exception>
    public double LabelSmoothing
    {
        get => _smoothing;
        init => _smoothing = value is >= 0 and < 1 ? value : throw new ArgumentOutOfRangeException(nameof(LabelSmoothing), value, "LabelSmoothing must be in [0, 1).");
    }

    private readonly double _smoothing;

    /// <summary>The weight of each head, backbone first.</summary>
    public IReadOnlyList<double> HeadWeights => _weights;

    /// <summary>C, the number of classes.</summary>
    public int ClassCount { get; }

    /// <summary>
    /// Whether every call checks that labels are in 0..C-1 and logits finite (true by default); the checks read values
    /// back from the device, which a GPU hot path with validated data can skip.
    /// </summary>
    public bool ValidateInputs { get; init; } = true;

    /// <inheritdoc />
    public string Name => (_weights.Skip(1).All(w => w == 0) ? "ce-backbone" : "ce-all-heads") +
        (_smoothing > 0 ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"-ls{_smoothing}") : string.Empty);

    /// <inheritdoc />
    public MultiBranchLossResult Compute(MultiBranchOutput output, Tensor labels, Tensor indices, int epoch, int totalEpochs)
    {
        TensorChecks.ObjectiveInputs(output, labels, indices, _weights.Length - 1, ClassCount, sampleCount: null, ValidateInputs);
        var components = new Dictionary<string, Tensor>();
        using var scope = NewDisposeScope();
        var heads = stack(output.Heads, 0);
        var perHead = _smoothing > 0 ? Losses.LabelSmoothedCrossEntropyUnchecked(heads, labels, _smoothing) : Losses.CrossEntropyUnchecked(heads, labels);
        Tensor? total = null;
        for (var h = 0; h < _weights.Length; h++)
        {
            if (_weights[h] == 0)
            {
                continue;
            }

            components.Add((_smoothing > 0 ? "ls/" : "ce/") + (h == 0 ? "backbone" : $"branch{h}"), perHead[h]);
            var weighted = perHead[h].mul(_weights[h]);
            total = total is null ? weighted : total.add(weighted);
        }

        foreach (var component in components.Values)
        {
            component.MoveToOuterDisposeScope();
        }

        return new MultiBranchLossResult(total!.MoveToOuterDisposeScope(), components);
    }

    /// <summary>Nothing to save: the objective has no state.</summary>
    /// <param name="stream">Unused.</param>
    public void SaveState(Stream stream)
    {
    }

    /// <summary>Nothing to load: the objective has no state.</summary>
    /// <param name="stream">Unused.</param>
    public void LoadState(Stream stream)
    {
    }
}
