using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// The DTSKD objective, composing the historical and structural teachers:
/// <c>L = w_ce · (w_0 · SKL(z_0, q_0) + Σ_k w_k · SKL(z_k, q_k)) + w_kd · Σ_k KL_T(z_k, z_0)</c>,
/// or, with the historical teacher off, <c>L = w_ce · CE(z_0, y) + w_kd · Σ_k KL_T(z_k, z_0)</c>.
/// </summary>
/// <remarks>
/// With the historical teacher on, <see cref="Compute"/> reads each head's soft targets for the batch and
/// then writes the heads' detached softmax back into the memory, so the next epoch reads this one. The
/// written values do not depend on the optimiser step, so writing them here equals writing them after it.
/// </remarks>
public sealed class DualTeacherLoss : IMultiBranchObjective
{
    private readonly DualTeacherLossOptions _options;
    private readonly double[] _branchWeights;

    /// <summary>Creates the loss and validates its options.</summary>
    /// <param name="options">Weights and switches; the defaults are the paper's recipe.</param>
    /// <param name="historicalTeacher">The per-sample memory; required when <see cref="DualTeacherLossOptions.UseHistoricalTeacher"/> is on, ignored otherwise.</param>
    public DualTeacherLoss(DualTeacherLossOptions options, HistoricalTeacher? historicalTeacher)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (options.UseHistoricalTeacher)
        {
            ArgumentNullException.ThrowIfNull(historicalTeacher);
            if (historicalTeacher.HeadCount != options.BranchWeights.Count + 1)
            {
                throw new ArgumentException(
                    $"The historical teacher has {historicalTeacher.HeadCount} heads but the options weigh {options.BranchWeights.Count} branches plus the backbone.",
                    nameof(historicalTeacher));
            }
        }

        _options = options;
        _branchWeights = [.. options.BranchWeights];
        HistoricalTeacher = options.UseHistoricalTeacher ? historicalTeacher : null;
        StructuralTeacher = new StructuralTeacher(options.Temperature, options.DetachBackbone);
        Schedule = options.Schedule;
    }

    /// <summary>The historical teacher in use, or null when it is switched off.</summary>
    public HistoricalTeacher? HistoricalTeacher { get; }

    /// <summary>The structural teacher.</summary>
    public StructuralTeacher StructuralTeacher { get; }

    /// <summary>The alpha_t schedule.</summary>
    public CoefficientSchedule Schedule { get; }

    /// <inheritdoc />
    public string Name => _options.UseHistoricalTeacher ? "dtskd" : "dtskd-hard-labels";

    /// <summary>The number of branches the weights are for.</summary>
    public int BranchCount => _branchWeights.Length;

    /// <summary>Computes the loss of one batch (and, with the historical teacher on, updates its memory).</summary>
    /// <param name="output">The model's output for the batch: backbone plus <see cref="BranchCount"/> branches.</param>
    /// <param name="labels">Class labels, [batch].</param>
    /// <param name="indices">Dataset indices of the batch's samples, [batch] (used by the historical teacher).</param>
    /// <param name="epoch">The 0-based epoch.</param>
    /// <param name="totalEpochs">The run's number of epochs.</param>
    /// <returns>The total and its components; the caller disposes it.</returns>
    public MultiBranchLossResult Compute(MultiBranchOutput output, Tensor labels, Tensor indices, int epoch, int totalEpochs)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(indices);
        if (output.BranchCount != BranchCount)
        {
            throw new ArgumentException(
                $"output has {output.BranchCount} branches but the loss weighs {BranchCount}.", nameof(output));
        }

        var batch = output.Backbone.shape[0];
        var classes = output.Backbone.shape[1];
        if (HistoricalTeacher is { } teacher && teacher.ClassCount != classes)
        {
            throw new ArgumentException(
                $"output has {classes} classes but the historical teacher has {teacher.ClassCount}.", nameof(output));
        }

        if (_options.ValidateInputs)
        {
            TensorChecks.IndexVector(labels, nameof(labels), batch, classes, "class labels");
            if (HistoricalTeacher is { } history)
            {
                TensorChecks.IndexVector(indices, nameof(indices), batch, history.SampleCount, "sample indices");
            }

            for (var h = 0; h < output.Heads.Count; h++)
            {
                TensorChecks.Finite(output.Heads[h], h == 0 ? "output.Backbone" : $"output.Branches[{h - 1}]");
            }
        }

        double? alpha = _options.UseHistoricalTeacher ? Schedule.At(epoch, totalEpochs) : null;
        var components = new Dictionary<string, Tensor>();
        using var scope = NewDisposeScope();

        // All heads at once, [heads, batch, C] in float32 (float64 when the logits are), so the loss is a few
        // kernels whatever the number of branches. Same formulas as Losses, term for term.
        var heads = stack(output.Heads, 0);
        var z = heads.to(heads.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32);
        Tensor supervised;
        if (HistoricalTeacher is { } memory)
        {
            var q = memory.SoftTargetsUnchecked(indices, labels, alpha!.Value).to(z.dtype).add(Losses.Epsilon);
            var perHead = q.mul(q.log().sub(z.log_softmax(2))).sum([1, 2]).div(batch);
            supervised = perHead[0].mul(_options.BackboneWeight);
            components.Add("history/backbone", perHead[0]);
            for (var k = 1; k <= BranchCount; k++)
            {
                components.Add($"history/branch{k}", perHead[k]);
                supervised = supervised.add(perHead[k].mul(_branchWeights[k - 1]));
            }

            memory.UpdateUnchecked(indices, heads);
        }
        else
        {
            supervised = nn.functional.cross_entropy(z[0], labels.to(ScalarType.Int64));
            components.Add("ce/backbone", supervised);
        }

        // Structural teacher: KL_T(branch_k, backbone) for every branch.
        var temperature = StructuralTeacher.Temperature;
        var backbone = StructuralTeacher.DetachBackbone ? z[0].detach() : z[0];
        var t = backbone.div(temperature).softmax(1).add(Losses.Epsilon);
        var kd = t.mul(t.log().sub(z.narrow(0, 1, BranchCount).div(temperature).log_softmax(2))).sum([1, 2]).mul(temperature * temperature / batch);
        for (var k = 0; k < BranchCount; k++)
        {
            components.Add($"structural/branch{k + 1}", kd[k]);
        }

        var total = supervised.mul(_options.CeWeight).add(kd.sum().mul(_options.KdWeight));
        foreach (var component in components.Values)
        {
            component.MoveToOuterDisposeScope();
        }

        return new MultiBranchLossResult(total.MoveToOuterDisposeScope(), components, alpha);
    }

    /// <summary>Writes the historical teacher's memory (nothing else of the loss changes during training).</summary>
    /// <param name="stream">A writable stream; it is left open.</param>
    public void SaveState(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        stream.WriteByte(HistoricalTeacher is null ? (byte)0 : (byte)1);
        HistoricalTeacher?.Save(stream);
    }

    /// <summary>Restores what <see cref="SaveState"/> wrote, from a loss with the same configuration.</summary>
    /// <param name="stream">A readable stream; it is left open.</param>
    /// <exception cref="InvalidDataException">The state is of a loss with or without a historical teacher unlike this one, or does not match it.</exception>
    public void LoadState(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var hasHistory = stream.ReadByte();
        if (hasHistory != (HistoricalTeacher is null ? 0 : 1))
        {
            throw new InvalidDataException(hasHistory switch
            {
                0 => "The saved loss state has no historical teacher, but this loss uses one.",
                1 => "The saved loss state has a historical teacher, but this loss does not use one.",
                _ => "The saved loss state is truncated.",
            });
        }

        HistoricalTeacher?.Load(stream);
    }
}
