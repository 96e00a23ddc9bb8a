namespace DTSKD.Core;

/// <summary>
/// The weights and switches of <see cref="DualTeacherLoss"/>. The defaults are the paper's CIFAR-100 recipe:
/// backbone 3.0, branches 1.0 each, CE 0.2, KD 0.8, T = 4 with the T² scale, cosine alpha from 0.9 to 0.
/// </summary>
public sealed class DualTeacherLossOptions
{
    /// <summary>w_0, the weight of the backbone head's historical (soft-target) term.</summary>
    public double BackboneWeight { get; set; } = 3.0;

    /// <summary>The recipe's weight of each branch head's historical term.</summary>
    public const double RecipeBranchWeight = 1.0;

    /// <summary>w_1..w_K, the weights of the branch heads' historical terms, one per branch; null (default) for <see cref="RecipeBranchWeight"/> each.</summary>
    public IReadOnlyList<double>? BranchWeights { get; set; }

    /// <summary>
    /// The weight of the historical teacher's part, the sum of every head's weighted soft-target term (the paper's and the
    /// release's w_ce, <c>--ce_weight</c>); with <see cref="UseHistoricalTeacher"/> off it weighs the backbone's hard-label
    /// cross-entropy that takes that part's place.
    /// </summary>
    public double HistoricalWeight { get; set; } = 0.2;

    /// <summary>The weight of the structural teacher's part, the sum of the branches' KD terms (w_kd, <c>--kd_weight</c>).</summary>
    public double StructuralWeight { get; set; } = 0.8;

    /// <summary>The structural teacher's temperature T.</summary>
    public double Temperature { get; set; } = 4.0;

    /// <summary>Whether the backbone logits are detached in the KD terms (the reference does not detach).</summary>
    public bool DetachBackbone { get; set; }

    /// <summary>Whether each KD term carries the reference's T² factor (true, the reference).</summary>
    public bool ScaleKdByTemperatureSquared { get; set; } = true;

    /// <summary>
    /// Epochs over which w_kd ramps up linearly from 0: epoch e (0-based) uses <c>w_kd · min(1, e / StructuralWarmupEpochs)</c>.
    /// 0 (the reference) for the full weight from the start.
    /// </summary>
    public int StructuralWarmupEpochs { get; set; }

    /// <summary>
    /// The 0-based epoch from which the teachers speak; before it every head learns from its hard labels alone (the
    /// soft targets' alpha is 1 and the KD weight 0), as a cross-entropy warm-up of a pretrained backbone, while the
    /// historical teacher already records each epoch's predictions. The KD ramp of <see cref="StructuralWarmupEpochs"/>
    /// counts from this epoch. 0 (the recipe) for teachers from the start.
    /// </summary>
    public int TeachersFromEpoch { get; set; }

    /// <summary>
    /// True (the recipe, <c>--HSKD 1</c>) for soft targets from the historical teacher on every head; false for
    /// hard-label cross-entropy on the backbone only (<c>--HSKD 0</c>, which is also what the public release
    /// effectively trains, since its history never updates).
    /// </summary>
    public bool UseHistoricalTeacher { get; set; } = true;

    /// <summary>The schedule of alpha_t, the one-hot label's weight in the soft targets.</summary>
    public CoefficientSchedule Schedule { get; set; } = CoefficientSchedule.Cosine();

    /// <summary>How the historical teacher stores its memory (default: dense float32 on the training device).</summary>
    public HistoryStorage History { get; set; } = HistoryStorage.Dense;

    /// <summary>
    /// Whether every call checks its inputs' values: labels in 0..C-1, sample indices in 0..N-1, logits finite. The
    /// checks read a few values back from the device; turn them off on a GPU hot path whose labels and indices come
    /// from a validated dataset (shapes are always checked, and the trainer's NaN guard still applies).
    /// </summary>
    public bool ValidateInputs { get; set; } = true;

    /// <summary>
    /// The recipe with each KD term taken without the T² factor (0.8 instead of 0.8 · T² = 12.8 per branch), for
    /// small data sets on which cross-entropy overfits. There the paper's structural term collapses short runs, and this
    /// preset beat cross-entropy in each of three seeds on 2,000 Fashion-MNIST images (+0.65 points on average); with
    /// 5,000 images, where cross-entropy hardly overfits, it was 0.47 points below (docs/results.md). For CIFAR-100 keep
    /// the paper's recipe (the default options).
    /// </summary>
    /// <returns>New options; change them freely.</returns>
    public static DualTeacherLossOptions SmallData() => new() { ScaleKdByTemperatureSquared = false };

    /// <summary>The weight of the KD part at a 0-based epoch: <see cref="StructuralWeight"/>, ramped over <see cref="StructuralWarmupEpochs"/>.</summary>
    /// <param name="epoch">The 0-based epoch.</param>
    internal double StructuralWeightAt(int epoch) =>
        epoch < TeachersFromEpoch ? 0
        : StructuralWarmupEpochs > 0 ? StructuralWeight * Math.Min(1.0, (double)Math.Max(epoch - TeachersFromEpoch, 0) / StructuralWarmupEpochs) : StructuralWeight;

    /// <summary>Throws when an option is out of range; called by <see cref="DualTeacherLoss"/>'s constructor.</summary>
    /// <param name="branchCount">When given, the number of branches the model has, which <see cref="BranchWeights"/> must match.</param>
    public void Validate(int? branchCount = null)
    {
        CheckWeight(BackboneWeight, nameof(BackboneWeight));
        CheckWeight(HistoricalWeight, nameof(HistoricalWeight));
        CheckWeight(StructuralWeight, nameof(StructuralWeight));
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
        if (StructuralWarmupEpochs < 0)
        {
            throw Invalid(nameof(StructuralWarmupEpochs), $"{nameof(StructuralWarmupEpochs)} must be 0 or more; got {StructuralWarmupEpochs}.");
        }

        if (TeachersFromEpoch < 0)
        {
            throw Invalid(nameof(TeachersFromEpoch), $"{nameof(TeachersFromEpoch)} must be 0 or more; got {TeachersFromEpoch}.");
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
