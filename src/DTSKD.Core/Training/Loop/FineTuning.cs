using DTSKD.Core.Models;

namespace DTSKD.Core.Training;

/// <summary>
/// Training a model whose backbone is pretrained: the pretrained parameters learn at a fraction of the learning rate
/// (the new classifier, neck and branches at the full rate), some stages may be frozen, the pretrained batch norms may
/// keep their statistics, and the learning rate warms up linearly over the first epochs. Set as
/// <see cref="TrainerOptions.FineTuning"/>; <see cref="For"/> builds it from a <see cref="PretrainedNetwork"/>.
/// </summary>
/// <remarks>
/// The recipe's numbers are defined here once: <see cref="RecipeBackboneFactor"/>, <see cref="RecipeWarmupEpochs"/>, and with
/// <see cref="TrainerOptions.FineTuningRecipe"/> the rate, batch and weight decay.
/// </remarks>
public sealed class FineTuning
{
    /// <summary>The recipe's factor on the pretrained parameters' learning rate.</summary>
    public const double RecipeBackboneFactor = 0.1;

    /// <summary>The recipe's warm-up, in epochs.</summary>
    public const int RecipeWarmupEpochs = 1;

    /// <summary>The model's parameter names that came pretrained (<see cref="PretrainedNetwork.Pretrained"/>); every other parameter is new.</summary>
    public IReadOnlyCollection<string> PretrainedParameters { get; set; } = [];

    /// <summary>The learning rate of the pretrained parameters is the options' rate times this (the default optimizer only).</summary>
    public double BackboneLearningRateFactor { get; set; } = RecipeBackboneFactor;

    /// <summary>Parameters that do not train (no gradient, not in the optimizer); their stages' batch norms keep their statistics.</summary>
    public IReadOnlyCollection<string> FrozenParameters { get; set; } = [];

    /// <summary>Whether every pretrained batch norm keeps its running statistics (runs in eval mode while the model trains).</summary>
    public bool FreezeBatchNorm { get; set; }

    /// <summary>Epochs over which the learning rate rises linearly, step by step, to the schedule's; 0 for none.</summary>
    public int WarmupEpochs { get; set; } = RecipeWarmupEpochs;

    /// <summary>The recipe for a pretrained network: its pretrained parameters at a tenth of the rate, a one-epoch warm-up, stages frozen through <paramref name="freezeThrough"/>.</summary>
    /// <param name="network">The pretrained network.</param>
    /// <param name="freezeThrough">A stage name of <see cref="PretrainedNetwork.Stages"/>, or <c>none</c> (default).</param>
    /// <param name="freezeBatchNorm">Whether every pretrained batch norm keeps its statistics.</param>
    public static FineTuning For(PretrainedNetwork network, string freezeThrough = "none", bool freezeBatchNorm = false)
    {
        ArgumentNullException.ThrowIfNull(network);
        return new FineTuning
        {
            PretrainedParameters = [.. network.Pretrained],
            FrozenParameters = network.ParametersThrough(freezeThrough),
            FreezeBatchNorm = freezeBatchNorm,
        };
    }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first setting out of range.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(PretrainedParameters, nameof(PretrainedParameters));
        ArgumentNullException.ThrowIfNull(FrozenParameters, nameof(FrozenParameters));
        if (!(BackboneLearningRateFactor > 0) || double.IsInfinity(BackboneLearningRateFactor))
        {
            throw new ArgumentOutOfRangeException(nameof(BackboneLearningRateFactor), BackboneLearningRateFactor, "BackboneLearningRateFactor must be a finite number > 0.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(WarmupEpochs, nameof(WarmupEpochs));
    }

    /// <summary>One line for checkpoints and logs: <see cref="Layout"/>, then the settings a resumed run may change.</summary>
    internal string Describe() => FormattableString.Invariant(
        $"{Layout()};factor={BackboneLearningRateFactor};freeze-bn={FreezeBatchNorm};warmup={WarmupEpochs}");

    /// <summary>Which parameters are pretrained and which frozen: the optimizer's groups, which a resumed run must keep.</summary>
    internal string Layout()
    {
        var names = string.Join("\n", PretrainedParameters.Order(StringComparer.Ordinal)) + "\0" + string.Join("\n", FrozenParameters.Order(StringComparer.Ordinal));
        var hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(names)))[..12].ToLowerInvariant();
        return FormattableString.Invariant($"pretrained={PretrainedParameters.Count},frozen={FrozenParameters.Count},names={hash}");
    }

    internal FineTuning Clone() => new()
    {
        PretrainedParameters = [.. PretrainedParameters],
        BackboneLearningRateFactor = BackboneLearningRateFactor,
        FrozenParameters = [.. FrozenParameters],
        FreezeBatchNorm = FreezeBatchNorm,
        WarmupEpochs = WarmupEpochs,
    };
}
