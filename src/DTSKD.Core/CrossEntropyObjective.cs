using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// The baseline objective: a weighted sum of hard-label cross-entropies over the heads,
/// <c>L = Σ_h w_h · CE(z_h, y)</c>. Heads with weight 0 are left out.
/// </summary>
public sealed class CrossEntropyObjective : IMultiBranchObjective
{
    private readonly double[] _weights;

    /// <summary>Creates the objective.</summary>
    /// <param name="headWeights">One weight per head, backbone first; each finite and &gt;= 0, at least one &gt; 0.</param>
    public CrossEntropyObjective(IReadOnlyList<double> headWeights)
    {
        ArgumentNullException.ThrowIfNull(headWeights);
        if (headWeights.Count == 0 || headWeights.Any(w => !(w >= 0) || double.IsInfinity(w)) || headWeights.All(w => w == 0))
        {
            throw new ArgumentException("headWeights must hold one finite weight >= 0 per head (backbone first), at least one of them > 0.", nameof(headWeights));
        }

        _weights = [.. headWeights];
    }

    /// <summary>Cross-entropy on the backbone head only (the plain baseline).</summary>
    /// <param name="branchCount">The model's number of branches K.</param>
    public static CrossEntropyObjective BackboneOnly(int branchCount) =>
        new([1.0, .. Enumerable.Repeat(0.0, branchCount)]);

    /// <summary>Cross-entropy on every head with weight 1.</summary>
    /// <param name="branchCount">The model's number of branches K.</param>
    public static CrossEntropyObjective AllHeads(int branchCount) =>
        new([.. Enumerable.Repeat(1.0, branchCount + 1)]);

    /// <summary>The weight of each head, backbone first.</summary>
    public IReadOnlyList<double> HeadWeights => _weights;

    /// <inheritdoc />
    public string Name => _weights.Skip(1).All(w => w == 0) ? "ce-backbone" : "ce-all-heads";

    /// <inheritdoc />
    public MultiBranchLossResult Compute(MultiBranchOutput output, Tensor labels, Tensor indices, int epoch, int totalEpochs)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (output.Heads.Count != _weights.Length)
        {
            throw new ArgumentException($"output has {output.Heads.Count} heads but the objective weighs {_weights.Length}.", nameof(output));
        }

        ArgumentNullException.ThrowIfNull(labels);
        var batch = output.Backbone.shape[0];
        TensorChecks.IndexVector(labels, nameof(labels), batch, output.Backbone.shape[1], "class labels");
        var components = new Dictionary<string, Tensor>();
        using var scope = NewDisposeScope();

        // Cross-entropy of every head at once: -log_softmax at the label, averaged over the batch.
        var heads = stack(output.Heads, 0);
        var z = heads.to(heads.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32);
        var target = labels.to(ScalarType.Int64, z.device).view(1, -1, 1).expand(_weights.Length, batch, 1);
        var perHead = z.log_softmax(2).gather(2, target).squeeze(2).mean([1]).neg();
        Tensor? total = null;
        for (var h = 0; h < _weights.Length; h++)
        {
            if (_weights[h] == 0)
            {
                continue;
            }

            components.Add(h == 0 ? "ce/backbone" : $"ce/branch{h}", perHead[h]);
            var weighted = perHead[h].mul(_weights[h]);
            total = total is null ? weighted : total.add(weighted);
        }

        foreach (var component in components.Values)
        {
            component.MoveToOuterDisposeScope();
        }

        return new MultiBranchLossResult(total!.MoveToOuterDisposeScope(), components, alpha: null);
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
