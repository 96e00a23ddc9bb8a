using static TorchSharp.torch;

namespace DTSKD.Core.Data;

/// <summary>
/// One batch of an <see cref="IBatchReader"/>: uint8 images, their labels and their positions in the source, all on the
/// reader's device. The batch owns its tensors (they belong to no dispose scope) and frees them on <see cref="Dispose"/>.
/// </summary>
public sealed class ImageBatch : IDisposable
{
    /// <summary>Wraps a batch's tensors; the batch takes ownership of them.</summary>
    /// <param name="images">uint8 images [B, C, H, W].</param>
    /// <param name="labels">int64 labels [B].</param>
    /// <param name="indices">int64 sample positions [B] in the source.</param>
    /// <param name="step">The batch's slice number within its pass (0-based).</param>
    public ImageBatch(Tensor images, Tensor labels, Tensor indices, int step)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(indices);
        Images = images.DetachFromDisposeScope();
        Labels = labels.DetachFromDisposeScope();
        Indices = indices.DetachFromDisposeScope();
        Step = step;
    }

    /// <summary>uint8 images [B, C, H, W].</summary>
    public Tensor Images { get; }

    /// <summary>int64 labels [B].</summary>
    public Tensor Labels { get; }

    /// <summary>int64 sample positions [B] in the source: what the historical teacher keys on.</summary>
    public Tensor Indices { get; }

    /// <summary>The batch's slice number within its pass (0-based): what seeds its augmentation draws.</summary>
    public int Step { get; }

    /// <summary>B, the number of samples.</summary>
    public int Count => (int)Labels.shape[0];

    /// <summary>Deconstructs into (images, labels, indices).</summary>
    /// <param name="images">uint8 images [B, C, H, W].</param>
    /// <param name="labels">int64 labels [B].</param>
    /// <param name="indices">int64 sample positions [B].</param>
    public void Deconstruct(out Tensor images, out Tensor labels, out Tensor indices) => (images, labels, indices) = (Images, Labels, Indices);

    /// <inheritdoc />
    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
        Indices.Dispose();
    }
}
