using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// A classifier with a backbone head and K branch heads, trained together by self-distillation.
/// </summary>
/// <remarks>
/// Implement it on a TorchSharp <c>nn.Module&lt;Tensor, MultiBranchOutput&gt;</c>: that base class's
/// <c>call</c> already satisfies <see cref="call"/>. Only the backbone head is needed at test time.
/// </remarks>
public interface IMultiBranchModel
{
    /// <summary>The number of classes C every head predicts.</summary>
    int ClassCount { get; }

    /// <summary>The number of branch heads K (the backbone head is not counted).</summary>
    int BranchCount { get; }

    /// <summary>Runs the model on a batch of images and returns the logits of all K + 1 heads.</summary>
    /// <param name="input">Images, [batch, channels, height, width].</param>
    /// <returns>The heads' logits; the caller owns and disposes it.</returns>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1716", Justification = "Mirrors TorchSharp's Module.call, so a module implements it for free.")]
    MultiBranchOutput call(Tensor input);
}
