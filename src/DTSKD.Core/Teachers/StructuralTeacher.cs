using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// The structural teacher: the backbone head of the current iteration supervises every branch head with a
/// temperature KL, <c>KD_k = KL_T(z_k, z_0)</c> (<see cref="Losses.KlDivergence"/>), all branches in one pass.
/// </summary>
/// <remarks>
/// <para>
/// As in the reference, the backbone logits are not detached by default, so the KD terms also send gradient into
/// the backbone; set <see cref="DetachBackbone"/> to make the backbone a fixed target.
/// </para>
/// <para>
/// The reference scales each term by T² (16 at T = 4), which keeps the gradient's size independent of T. With the
/// recipe's weights that makes each branch's KD term weigh 0.8·16 = 12.8 against 0.2 for the labels;
/// <see cref="ScaleByTemperatureSquared"/> = false drops the factor (see <c>docs/method.md</c>).
/// </para>
/// </remarks>
public sealed class StructuralTeacher
{
    /// <summary>Creates the teacher.</summary>
    /// <param name="temperature">The softening temperature T (&gt; 0); the reference uses 4.</param>
    /// <param name="detachBackbone">True to stop the KD gradient at the backbone logits.</param>
    /// <param name="scaleByTemperatureSquared">True (the reference) to multiply each term by T².</param>
    public StructuralTeacher(double temperature = 4.0, bool detachBackbone = false, bool scaleByTemperatureSquared = true)
    {
        TensorChecks.Temperature(temperature, nameof(temperature));
        TorchSharpRuntime.EnsureLoaded();
        Temperature = temperature;
        DetachBackbone = detachBackbone;
        ScaleByTemperatureSquared = scaleByTemperatureSquared;
    }

    /// <summary>The temperature T.</summary>
    public double Temperature { get; }

    /// <summary>Whether the backbone logits are detached before they act as the target.</summary>
    public bool DetachBackbone { get; }

    /// <summary>Whether each term carries the reference's T² factor.</summary>
    public bool ScaleByTemperatureSquared { get; }

    /// <summary>The KD term of every branch of an output: <c>KL_T(z_k, z_0)</c> for k = 1..K.</summary>
    /// <param name="output">The model's output for a batch (at least one branch).</param>
    /// <returns>A new float32 tensor [K] (float64 for float64 logits), in branch order; the caller owns it.</returns>
    public Tensor Terms(MultiBranchOutput output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (output.BranchCount == 0)
        {
            throw new ArgumentException("output has no branches for the structural teacher to supervise.", nameof(output));
        }

        using var scope = NewDisposeScope();
        var heads = stack(output.Heads, 0);
        return TermsUnchecked(heads.to(Losses.ComputeType(heads))).MoveToOuterDisposeScope();
    }

    /// <summary><see cref="Terms"/> for stacked logits [heads, batch, C] (backbone first) that the caller has checked.</summary>
    internal Tensor TermsUnchecked(Tensor heads)
    {
        using var scope = NewDisposeScope();
        var backbone = DetachBackbone ? heads[0].detach() : heads[0];
        var branches = heads.narrow(0, 1, heads.shape[0] - 1);
        var kd = Losses.KlDivergenceUnchecked(branches, backbone, Temperature);
        return (ScaleByTemperatureSquared ? kd : kd.div(Temperature * Temperature)).MoveToOuterDisposeScope();
    }
}
