using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// The DTSKD objective, a weighted sum of the two teachers' terms:
/// <c>L = w_ce · (w_0 · SKL(z_0, q_0) + Σ_k w_k · SKL(z_k, q_k)) + w_kd · Σ_k KL_T(z_k, z_0)</c>,
/// or, with the historical teacher off, <c>L = w_ce · CE(z_0, y) + w_kd · Σ_k KL_T(z_k, z_0)</c>.
/// </summary>
/// <remarks>
/// The terms come from <see cref="HistoricalTeacher"/> (which also writes its memory, so the next epoch reads this
/// one) and <see cref="StructuralTeacher"/>; this class only weighs and names them. It owns the historical teacher.
/// </remarks>
public sealed class DualTeacherLoss : IPerSampleObjective, IDisposable
{
    private readonly DualTeacherLossOptions _options;
    private readonly double[] _headWeights;

    /// <summary>Creates the loss for a model's branches and classes, with a historical teacher for its training set.</summary>
    /// <param name="branchCount">K, the model's number of branches.</param>
    /// <param name="classCount">C, the model's number of classes.</param>
    /// <param name="sampleCount">N, the size of the training set (the historical teacher keeps a row per sample).</param>
    /// <param name="options">Weights and switches; null for the paper's recipe. Validated here.</param>
    /// <param name="device">The training device (default: CPU).</param>
    public DualTeacherLoss(int branchCount, int classCount, int sampleCount, DualTeacherLossOptions? options = null, Device? device = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(branchCount, 1);
        _options = (options ?? new DualTeacherLossOptions()).Clone();
        _options.Validate(branchCount);
        _headWeights = [_options.BackboneWeight, .. _options.BranchWeights ?? Enumerable.Repeat(DualTeacherLossOptions.RecipeBranchWeight, branchCount)];
        ClassCount = classCount;
        HistoricalTeacher = _options.UseHistoricalTeacher
            ? new HistoricalTeacher(sampleCount, classCount, branchCount + 1, device, _options.History)
            : null;
        StructuralTeacher = new StructuralTeacher(_options.Temperature, _options.DetachBackbone, _options.ScaleKdByTemperatureSquared);
    }

    /// <summary>The loss for a model, so its branches and classes cannot disagree with it.</summary>
    /// <param name="model">The model to train.</param>
    /// <param name="sampleCount">N, the size of the training set.</param>
    /// <param name="options">Weights and switches; null for the paper's recipe.</param>
    /// <param name="device">The training device (default: CPU).</param>
    public static DualTeacherLoss For(IMultiBranchModel model, int sampleCount, DualTeacherLossOptions? options = null, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new DualTeacherLoss(model.BranchCount, model.ClassCount, sampleCount, options, device);
    }

    /// <summary>The historical teacher in use, or null when it is switched off.</summary>
    public HistoricalTeacher? HistoricalTeacher { get; }

    /// <summary>The structural teacher.</summary>
    public StructuralTeacher StructuralTeacher { get; }

    /// <summary>K, the number of branches the loss weighs.</summary>
    public int BranchCount => _headWeights.Length - 1;

    /// <summary>C, the number of classes.</summary>
    public int ClassCount { get; }

    /// <inheritdoc />
    public string Name => _options.UseHistoricalTeacher ? "dtskd" : "dtskd-hard-labels";

    /// <inheritdoc />
    public int? SampleRows => HistoricalTeacher?.SampleCount;

    /// <summary>Computes the loss of one batch (and, with the historical teacher on, updates its memory).</summary>
    /// <param name="output">The model's output for the batch: backbone plus <see cref="BranchCount"/> branches.</param>
    /// <param name="labels">Class labels, [batch].</param>
    /// <param name="indices">Dataset indices of the batch's samples, [batch] (used by the historical teacher).</param>
    /// <param name="epoch">The 0-based epoch.</param>
    /// <param name="totalEpochs">The run's number of epochs.</param>
    /// <returns>The total, its terms and the scalar <c>alpha</c> (and <c>kd_weight</c> during a warm-up); the caller disposes it.</returns>
    public MultiBranchLossResult Compute(MultiBranchOutput output, Tensor labels, Tensor indices, int epoch, int totalEpochs)
    {
        TensorChecks.ObjectiveInputs(output, labels, indices, BranchCount, ClassCount, HistoricalTeacher?.SampleCount, _options.ValidateInputs);
        var scalars = new Dictionary<string, double>();
        var components = new Dictionary<string, Tensor>();
        using var scope = NewDisposeScope();
        var heads = stack(output.Heads, 0);
        var z = heads.to(Losses.ComputeType(heads));

        Tensor supervised;
        if (HistoricalTeacher is { } history)
        {
            // Before the teachers speak the soft target is the label (the memory still records this epoch's predictions).
            var alpha = scalars["alpha"] = epoch < _options.TeachersFromEpoch ? 1.0 : _options.Schedule.At(epoch, totalEpochs);
            var terms = history.TermsUnchecked(z, labels, indices, alpha);
            supervised = terms[0].mul(_headWeights[0]);
            components["history/backbone"] = terms[0];
            for (var h = 1; h < _headWeights.Length; h++)
            {
                supervised = supervised.add(terms[h].mul(_headWeights[h]));
                components[$"history/branch{h}"] = terms[h];
            }
        }
        else
        {
            supervised = components["ce/backbone"] = Losses.CrossEntropyUnchecked(z[0], labels);
        }

        var kd = StructuralTeacher.TermsUnchecked(z);
        for (var k = 0; k < BranchCount; k++)
        {
            components[$"structural/branch{k + 1}"] = kd[k];
        }

        var kdWeight = _options.StructuralWeightAt(epoch);
        if (_options.StructuralWarmupEpochs > 0 || _options.TeachersFromEpoch > 0)
        {
            scalars["kd_weight"] = kdWeight;
        }

        var total = supervised.mul(_options.HistoricalWeight).add(kd.sum().mul(kdWeight));
        foreach (var component in components.Values)
        {
            component.MoveToOuterDisposeScope();
        }

        return new MultiBranchLossResult(total.MoveToOuterDisposeScope(), components, scalars);
    }

    /// <summary>Writes the historical teacher's memory (nothing else of the loss changes during training).</summary>
    /// <param name="stream">A writable stream; it is left open.</param>
    public void SaveState(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        HistoricalTeacher?.Save(stream);
    }

    /// <summary>Restores what <see cref="SaveState"/> wrote, from a loss with the same configuration (<see cref="Name"/> tells them apart).</summary>
    /// <param name="stream">A readable stream; it is left open.</param>
    /// <exception cref="InvalidDataException">The state does not match this loss's historical teacher.</exception>
    public void LoadState(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        HistoricalTeacher?.Load(stream);
    }

    /// <summary>Frees the historical teacher's memory.</summary>
    public void Dispose() => HistoricalTeacher?.Dispose();
}
