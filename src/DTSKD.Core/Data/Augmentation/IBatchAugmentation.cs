using static TorchSharp.torch;

namespace DTSKD.Core.Data;

/// <summary>
/// What turns a batch of uint8 images into the model's input: random augmentation for training, a fixed preparation
/// for testing, both ending in per-channel normalisation. It runs on the batch's device, and every random draw is a
/// function of (seed, epoch, step), so runs resume exactly.
/// </summary>
/// <remarks>
/// <see cref="PadCropFlip"/> is the recipe's (zero padding, random crop, flip); <see cref="ResizedCropFlip"/> is the
/// ImageNet one (random resized crop and flip for training, resize and centre crop for testing).
/// </remarks>
public interface IBatchAugmentation
{
    /// <summary>Per-channel means of the [0, 1]-scaled pixels that normalisation subtracts.</summary>
    IReadOnlyList<double> Mean { get; }

    /// <summary>Per-channel standard deviations that normalisation divides by.</summary>
    IReadOnlyList<double> Std { get; }

    /// <summary>The shape of the model's input for images of <paramref name="input"/>'s shape.</summary>
    /// <param name="input">The shape of the uint8 images.</param>
    ImageShape OutputShape(ImageShape input);

    /// <summary>Training: augments and normalises a batch.</summary>
    /// <param name="images">uint8 images [B, C, H, W].</param>
    /// <param name="seed">The run's seed.</param>
    /// <param name="epoch">The 0-based epoch.</param>
    /// <param name="stepInEpoch">The step within the epoch.</param>
    /// <returns>float32 [B, C, H', W'] on the images' device; the caller owns it.</returns>
    Tensor Augment(Tensor images, long seed, int epoch, int stepInEpoch);

    /// <summary>Testing: prepares (resizes, crops) and normalises a batch, with no randomness.</summary>
    /// <param name="images">uint8 images [B, C, H, W].</param>
    /// <returns>float32 [B, C, H', W'] on the images' device; the caller owns it.</returns>
    Tensor Prepare(Tensor images);
}
