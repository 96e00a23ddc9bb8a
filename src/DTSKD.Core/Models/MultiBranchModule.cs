using static TorchSharp.torch;

namespace DTSKD.Core.Models;

/// <summary>
/// A TorchSharp module that is an <see cref="IMultiBranchModel"/>: derive from it, build your layers, and return a
/// <see cref="MultiBranchOutput"/> from <c>forward</c>. Every built-in multi-branch network derives from it.
/// </summary>
public abstract class MultiBranchModule : nn.Module<Tensor, MultiBranchOutput>, IMultiBranchModel
{
    /// <summary>Creates the module.</summary>
    /// <param name="name">The module's name (TorchSharp's module name).</param>
    protected MultiBranchModule(string name)
        : base(name)
    {
    }

    /// <inheritdoc />
    public abstract int ClassCount { get; }

    /// <inheritdoc />
    public abstract int BranchCount { get; }

    /// <summary>
    /// Whether the branches read the backbone's maps detached (false by default): their losses then train the neck and
    /// the branches alone and send no gradient into the backbone, which learns from its own head only. A remedy measured
    /// for fine-tuning a pretrained trunk (docs/pretrained.md); with it, detach the backbone in the KD terms too
    /// (<see cref="DualTeacherLossOptions.DetachBackbone"/>) so that no teacher term moves the trunk.
    /// </summary>
    public bool BranchesDetached { get; set; }

    /// <summary>The maps and feature the neck reads: the backbone's, or detached copies when <see cref="BranchesDetached"/>.</summary>
    /// <param name="stages">The stage maps the branches attach to.</param>
    /// <param name="feature">The backbone's final feature.</param>
    protected (IReadOnlyList<Tensor> Stages, Tensor Feature) NeckInputs(IReadOnlyList<Tensor> stages, Tensor feature)
    {
        ArgumentNullException.ThrowIfNull(stages);
        ArgumentNullException.ThrowIfNull(feature);
        return BranchesDetached ? ([.. stages.Select(s => s.detach())], feature.detach()) : (stages, feature);
    }
}
