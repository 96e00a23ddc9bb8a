using static TorchSharp.torch;

namespace DTSKD.Core.Models;

/// <summary>What a staged backbone yields for <see cref="MultiBranchNetwork"/>: intermediate stage maps and the final feature.</summary>
/// <param name="Stages">The outputs of the stages that get a branch, shallowest first, each [B, c_i, H_i, W_i].</param>
/// <param name="Feature">The final pooled feature that the backbone head classifies, [B, F] or [B, F, 1, 1].</param>
public sealed record BackboneFeatures(IReadOnlyList<Tensor> Stages, Tensor Feature);
