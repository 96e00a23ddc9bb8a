namespace DTSKD.Core;

/// <summary>
/// The schedule of alpha_t, the weight of the one-hot label in the historical teacher's soft target
/// <c>alpha_t · onehot + (1 − alpha_t) · history</c>. It shrinks over training so the history counts more.
/// </summary>
/// <remarks>Epochs are 0-based, as in the reference implementation.</remarks>
public abstract class CoefficientSchedule
{
    /// <summary>The recipe's alpha at epoch 0 (the release's <c>--cos_max</c>).</summary>
    public const double RecipeCosineMax = 0.9;

    /// <summary>The recipe's alpha at the end of the run (the release's <c>--cos_min</c>).</summary>
    public const double RecipeCosineMin = 0.0;

    /// <summary>The release's default <c>--alpha_T</c> of its linear schedule.</summary>
    public const double ReleaseLinearAlphaT = 0.8;

    private CoefficientSchedule()
    {
    }

    /// <summary>
    /// Cosine decay from <paramref name="max"/> at epoch 0 towards <paramref name="min"/>:
    /// <c>min + (max − min) · (1 + cos(π·e/E)) / 2</c>. The recipe uses max 0.9, min 0.0.
    /// </summary>
    /// <param name="max">The value at epoch 0, in [0, 1].</param>
    /// <param name="min">The value approached at the last epoch, in [0, <paramref name="max"/>].</param>
    public static CoefficientSchedule Cosine(double max = RecipeCosineMax, double min = RecipeCosineMin)
    {
        CheckUnit(max, nameof(max));
        CheckUnit(min, nameof(min));
        if (min > max)
        {
            throw new ArgumentOutOfRangeException(nameof(min), min, $"min must not exceed max ({max}).");
        }

        return new CosineSchedule(max, min);
    }

    /// <summary>
    /// Linear decay: <c>1 − max(0, alphaT · (e + 1) / E)</c>, the reference's <c>--coeff_decay linear</c>.
    /// </summary>
    /// <param name="alphaT">The reference's <c>--alpha_T</c>, in [0, 1]; the last epoch's value is <c>1 − alphaT</c>.</param>
    public static CoefficientSchedule Linear(double alphaT = ReleaseLinearAlphaT)
    {
        CheckUnit(alphaT, nameof(alphaT));
        return new LinearSchedule(alphaT);
    }

    /// <summary>The same value at every epoch (1.0 turns the history off: the target is the one-hot label).</summary>
    /// <param name="value">The value, in [0, 1].</param>
    public static CoefficientSchedule Constant(double value)
    {
        CheckUnit(value, nameof(value));
        return new ConstantSchedule(value);
    }

    /// <summary>The value of alpha_t at a 0-based epoch of a run of <paramref name="totalEpochs"/> epochs.</summary>
    /// <param name="epoch">The 0-based epoch, in [0, <paramref name="totalEpochs"/>).</param>
    /// <param name="totalEpochs">The number of epochs of the run (&gt; 0).</param>
    public double At(int epoch, int totalEpochs)
    {
        if (totalEpochs <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(totalEpochs), totalEpochs, "totalEpochs must be greater than 0.");
        }

        if (epoch < 0 || epoch >= totalEpochs)
        {
            throw new ArgumentOutOfRangeException(nameof(epoch), epoch, $"epoch must be in 0..{totalEpochs - 1} (0-based).");
        }

        return Evaluate(epoch, totalEpochs);
    }

    /// <summary>A short description, such as <c>cosine(max=0.9, min=0)</c>.</summary>
    public abstract override string ToString();

    private protected abstract double Evaluate(int epoch, int totalEpochs);

    private static void CheckUnit(double value, string name)
    {
        if (!(value >= 0 && value <= 1))
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be in [0, 1].");
        }
    }

    private sealed class CosineSchedule(double max, double min) : CoefficientSchedule
    {
        private protected override double Evaluate(int epoch, int totalEpochs) =>
            min + ((max - min) * (1 + Math.Cos(Math.PI * epoch / totalEpochs)) / 2);

        public override string ToString() => FormattableString.Invariant($"cosine(max={max}, min={min})");
    }

    private sealed class LinearSchedule(double alphaT) : CoefficientSchedule
    {
        private protected override double Evaluate(int epoch, int totalEpochs) =>
            1 - Math.Max(0, alphaT * (epoch + 1) / totalEpochs);

        public override string ToString() => FormattableString.Invariant($"linear(alphaT={alphaT})");
    }

    private sealed class ConstantSchedule(double value) : CoefficientSchedule
    {
        private protected override double Evaluate(int epoch, int totalEpochs) => value;

        public override string ToString() => FormattableString.Invariant($"constant({value})");
    }
}
