using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// The structural teacher: the backbone head supervises every branch head of the same iteration with
/// <see cref="Losses.KlDivergence"/> at temperature T, <c>KD_k = KL_T(z_k, z_0)</c>.
/// </summary>
/// <remarks>
/// As in the reference, the backbone logits are not detached by default, so the KD terms also send
/// gradient into the backbone; set <see cref="DetachBackbone"/> to make the backbone a fixed target.
/// </remarks>
public sealed class StructuralTeacher
{
    /// <summary>Creates the teacher.</summary>
    /// <param name="temperature">The softening temperature T (&gt; 0); the reference uses 4.</param>
    /// <param name="detachBackbone">True to stop the KD gradient at the backbone logits.</param>
    public StructuralTeacher(double temperature = 4.0, bool detachBackbone = false)
    {
        TensorChecks.Temperature(temperature, nameof(temperature));
        TorchSharpRuntime.EnsureLoaded();
        Temperature = temperature;
        DetachBackbone = detachBackbone;
    }

    /// <summary>The temperature T.</summary>
    public double Temperature { get; }

    /// <summary>Whether the backbone logits are detached before they act as the target.</summary>
    public bool DetachBackbone { get; }

    /// <summary>The KD term of one branch: <c>KL_T(branch, backbone)</c>, a 0-dim float32 tensor.</summary>
    /// <param name="branchLogits">The branch's logits (the student), [batch, C].</param>
    /// <param name="backboneLogits">The backbone's logits (the teacher), [batch, C].</param>
    /// <returns>A new 0-dim tensor the caller owns.</returns>
    public Tensor Loss(Tensor branchLogits, Tensor backboneLogits)
    {
        ArgumentNullException.ThrowIfNull(backboneLogits);
        if (!DetachBackbone)
        {
            return Losses.KlDivergence(branchLogits, backboneLogits, Temperature);
        }

        using var target = backboneLogits.detach();
        return Losses.KlDivergence(branchLogits, target, Temperature);
    }

    /// <summary>The KD term of every branch of an output, in branch order.</summary>
    /// <param name="output">The model's output for a batch.</param>
    /// <returns>K new 0-dim tensors the caller owns.</returns>
    public IReadOnlyList<Tensor> BranchLosses(MultiBranchOutput output)
    {
        ArgumentNullException.ThrowIfNull(output);
        return output.Branches.Select(branch => Loss(branch, output.Backbone)).ToArray();
    }
}
