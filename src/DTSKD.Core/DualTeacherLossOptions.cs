namespace DTSKD.Core;

/// <summary>
/// The weights and switches of <see cref="DualTeacherLoss"/>. The defaults are the paper's CIFAR-100
/// recipe: backbone 3.0, branches 1.0 each, CE 0.2, KD 0.8, T = 4, cosine alpha from 0.9 to 0.
/// </summary>
public sealed class DualTeacherLossOptions
{
    /// <summary>w_0, the weight of the backbone head's historical (soft-target) term.</summary>
    public double BackboneWeight { get; set; } = 3.0;

    /// <summary>w_1..w_K, the weights of the branch heads' historical terms; one per branch.</summary>
    public IReadOnlyList<double> BranchWeights { get; set; } = [1.0, 1.0, 1.0];

    /// <summary>w_ce, the weight of the whole historical (or hard-label) part.</summary>
    public double CeWeight { get; set; } = 0.2;

    /// <summary>w_kd, the weight of the sum of the structural teacher's KD terms.</summary>
    public double KdWeight { get; set; } = 0.8;

    /// <summary>The structural teacher's temperature T.</summary>
    public double Temperature { get; set; } = 4.0;

    /// <summary>Whether the backbone logits are detached in the KD terms (the reference does not detach).</summary>
    public bool DetachBackbone { get; set; }

    /// <summary>
    /// True (the recipe, <c>--HSKD 1</c>) for soft targets from the historical teacher on every head; false for
    /// hard-label cross-entropy on the backbone only (<c>--HSKD 0</c>, which is also what the public release
    /// effectively trains, since its history never updates).
    /// </summary>
    public bool UseHistoricalTeacher { get; set; } = true;

    /// <summary>The schedule of alpha_t, the one-hot label's weight in the soft targets.</summary>
    public CoefficientSchedule Schedule { get; set; } = CoefficientSchedule.Cosine(0.9, 0.0);

    /// <summary>
    /// Whether every call checks its inputs: labels in 0..C-1, sample indices in 0..N-1, logits finite. The
    /// checks read a few values back from the device; turn them off on a GPU hot path whose labels and indices
    /// come from a validated dataset (the trainer's NaN guard still applies).
    /// </summary>
    public bool ValidateInputs { get; set; } = true;

    /// <summary>Throws when an option is out of range; called by <see cref="DualTeacherLoss"/>'s constructor.</summary>
    /// <param name="branchCount">When given, the number of branches the model has, which the branch weights must match.</param>
    public void Validate(int? branchCount = null)
    {
        CheckWeight(BackboneWeight, nameof(BackboneWeight));
        CheckWeight(CeWeight, nameof(CeWeight));
        CheckWeight(KdWeight, nameof(KdWeight));
        ArgumentNullException.ThrowIfNull(BranchWeights, nameof(BranchWeights));
        ArgumentNullException.ThrowIfNull(Schedule, nameof(Schedule));
        for (var i = 0; i < BranchWeights.Count; i++)
        {
            CheckWeight(BranchWeights[i], $"{nameof(BranchWeights)}[{i}]");
        }

        TensorChecks.Temperature(Temperature, nameof(Temperature));
        if (branchCount is { } k && BranchWeights.Count != k)
        {
            throw Invalid(nameof(BranchWeights), $"{nameof(BranchWeights)} has {BranchWeights.Count} weights but the model has {k} branches.");
        }
    }

    private static ArgumentException Invalid(string name, string message) => new(message, name);

    private static void CheckWeight(double value, string name)
    {
        if (!(value >= 0) || double.IsInfinity(value))
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a finite number >= 0.");
        }
    }
}
