namespace DTSKD.Core;

/// <summary>
/// The weights and switches of <see cref="DualTeacherLoss"/>. The defaults are the paper's CIFAR-100 recipe:
/// backbone 3.0, branches 1.0 each, CE 0.2, KD 0.8, T = 4 with the T² scale, cosine alpha from 0.9 to 0.
/// </summary>
public sealed class DualTeacherLossOptions
{
    /// <summary>w_0, the weight of the backbone head's historical (soft-target) term.</summary>
    public double BackboneWeight { get; set; } = 3.0;

    /// <summary>w_1..w_K, the weights of the branch heads' historical terms, one per branch; null (default) for 1.0 each.</summary>
    public IReadOnlyList<double>? BranchWeights { get; set; }

    /// <summary>w_ce, the weight of the whole historical (or hard-label) part.</summary>
    public double CeWeight { get; set; } = 0.2;

    /// <summary>w_kd, the weight of the sum of the structural teacher's KD terms.</summary>
    public double KdWeight { get; set; } = 0.8;

    /// <summary>The structural teacher's temperature T.</summary>
    public double Temperature { get; set; } = 4.0;

    /// <summary>Whether the backbone logits are detached in the KD terms (the reference does not detach).</summary>
    public bool DetachBackbone { get; set; }

    /// <summary>Whether each KD term carries the reference's T² factor (true, the reference).</summary>
    public bool ScaleKdByTemperatureSquared { get; set; } = true;

    /// <summary>
    /// Epochs over which w_kd ramps up linearly from 0: epoch e (0-based) uses <c>w_kd · min(1, e / KdWarmupEpochs)</c>.
    /// 0 (the reference) for the full weight from the start.
    /// </summary>
    public int KdWarmupEpochs { get; set; }

    /// <summary>
    /// True (the recipe, <c>--HSKD 1</c>) for soft targets from the historical teacher on every head; false for
    /// hard-label cross-entropy on the backbone only (<c>--HSKD 0</c>, which is also what the public release
    /// effectively trains, since its history never updates).
    /// </summary>
    public bool UseHistoricalTeacher { get; set; } = true;

    /// <summary>The schedule of alpha_t, the one-hot label's weight in the soft targets.</summary>
    public CoefficientSchedule Schedule { get; set; } = CoefficientSchedule.Cosine(0.9, 0.0);

    /// <summary>How the historical teacher stores its memory (default: dense float32 on the training device).</summary>
    public HistoryStorage History { get; set; } = HistoryStorage.Dense;

    /// <summary>
    /// Whether every call checks its inputs' values: labels in 0..C-1, sample indices in 0..N-1, logits finite. The
    /// checks read a few values back from the device; turn them off on a GPU hot path whose labels and indices come
    /// from a validated dataset (shapes are always checked, and the trainer's NaN guard still applies).
    /// </summary>
    public bool ValidateInputs { get; set; } = true;

    /// <summary>
    /// The recipe with each KD term taken without the T² factor (w_kd = 0.8 instead of 0.8 · T² = 12.8 per branch), for
    /// small data sets on which cross-entropy overfits. There the paper's structural term collapses short runs, and this
    /// preset beat cross-entropy in each of three seeds on 2,000 Fashion-MNIST images (+0.65 points on average); with
    /// 5,000 images, where cross-entropy hardly overfits, it was 0.47 points below (docs/results.md). For CIFAR-100 keep
    /// the paper's recipe (the default options).
    /// </summary>
    /// <returns>New options; change them freely.</returns>
    public static DualTeacherLossOptions SmallData() => new() { ScaleKdByTemperatureSquared = false };

    /// <summary>The weight of the KD part at a 0-based epoch: <see cref="KdWeight"/>, ramped over <see cref="KdWarmupEpochs"/>.</summary>
    /// <param name="epoch">The 0-based epoch.</param>
    internal double KdWeightAt(int epoch) =>
        KdWarmupEpochs > 0 ? KdWeight * Math.Min(1.0, (double)Math.Max(epoch, 0) / KdWarmupEpochs) : KdWeight;

    /// <summary>Throws when an option is out of range; called by <see cref="DualTeacherLoss"/>'s constructor.</summary>
    /// <param name="branchCount">When given, the number of branches the model has, which <see cref="BranchWeights"/> must match.</param>
    public void Validate(int? branchCount = null)
    {
        CheckWeight(BackboneWeight, nameof(BackboneWeight));
        CheckWeight(CeWeight, nameof(CeWeight));
        CheckWeight(KdWeight, nameof(KdWeight));
        ArgumentNullException.ThrowIfNull(Schedule, nameof(Schedule));
        ArgumentNullException.ThrowIfNull(History, nameof(History));
        if (BranchWeights is { } weights)
        {
            for (var i = 0; i < weights.Count; i++)
            {
                CheckWeight(weights[i], $"{nameof(BranchWeights)}[{i}]");
            }

            if (branchCount is { } k && weights.Count != k)
            {
                throw Invalid(nameof(BranchWeights), $"{nameof(BranchWeights)} has {weights.Count} weights but the model has {k} branches.");
            }
        }

        TensorChecks.Temperature(Temperature, nameof(Temperature));
        if (KdWarmupEpochs < 0)
        {
            throw Invalid(nameof(KdWarmupEpochs), $"{nameof(KdWarmupEpochs)} must be 0 or more; got {KdWarmupEpochs}.");
        }
    }

    /// <summary>A copy, so a loss is not changed by later edits of the options it was built with.</summary>
    internal DualTeacherLossOptions Clone() => (DualTeacherLossOptions)MemberwiseClone();

    private static ArgumentException Invalid(string name, string message) => new(message, name);

    private static void CheckWeight(double value, string name)
    {
        if (!(value >= 0) || double.IsInfinity(value))
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a finite number >= 0.");
        }
    }
}
