using static TorchSharp.torch;

namespace DTSKD.Core.Models;

/// <summary>What a staged backbone yields for <see cref="MultiBranchNetwork"/>: intermediate stage maps and the final feature.</summary>
public sealed record BackboneFeatures
{
    /// <summary>Creates the record.</summary>
    /// <param name="stages">The outputs of the stages that get a branch, shallowest first, each [B, c_i, H_i, W_i].</param>
    /// <param name="feature">The final pooled feature that the backbone head classifies, [B, F] or [B, F, 1, 1].</param>
    public BackboneFeatures(IReadOnlyList<Tensor> stages, Tensor feature)
    {
        Stages = stages;
        Feature = feature;
    }

    /// <summary>The outputs of the stages that get a branch, shallowest first, each [B, c_i, H_i, W_i].</summary>
    public IReadOnlyList<Tensor> Stages { get; }

    /// <summary>The final pooled feature that the backbone head classifies, [B, F] or [B, F, 1, 1].</summary>
    public Tensor Feature { get; }
}
