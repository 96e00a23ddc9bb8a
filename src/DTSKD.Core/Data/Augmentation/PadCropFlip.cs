using static TorchSharp.torch;

namespace DTSKD.Core.Data;

/// <summary>
/// The recipe's augmentation, batched on the training device: random crop after zero padding, per-sample random
/// horizontal flip, scaling to [0, 1] and per-channel normalisation, as one gather and one multiply-add (no per-sample
/// managed loops). At test time it only normalises.
/// </summary>
/// <remarks>
/// Crop offsets and flips of a step are drawn on the CPU from a generator seeded by (seed, epoch, step), so
/// CPU and GPU runs, and resumed runs, draw the same. Padding is zero in pixel space (before normalisation),
/// as torchvision's RandomCrop(padding=4) on the PIL image is.
/// </remarks>
public sealed class PadCropFlip : IBatchAugmentation
{
    private const ulong Stream = 0xA06_0001;

    /// <summary>Creates the preprocessing.</summary>
    /// <param name="mean">Per-channel mean of the [0, 1]-scaled pixels.</param>
    /// <param name="std">Per-channel standard deviation (all &gt; 0).</param>
    /// <param name="padding">Zero padding on each side before the random crop; 0 for no crop.</param>
    /// <param name="horizontalFlip">Whether to flip each sample horizontally with probability 0.5.</param>
    public PadCropFlip(IReadOnlyList<double> mean, IReadOnlyList<double> std, int padding = 4, bool horizontalFlip = true)
    {
        PixelNormalization.Validate(mean, std);
        ArgumentOutOfRangeException.ThrowIfNegative(padding);
        Mean = [.. mean];
        Std = [.. std];
        Padding = padding;
        HorizontalFlip = horizontalFlip;
    }

    /// <summary>The recipe's CIFAR preprocessing: crop with padding 4, flip, mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010).</summary>
    public static PadCropFlip Cifar { get; } = new([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]);

    /// <summary>The same recipe for Fashion-MNIST (1 channel): crop with padding 4, flip, mean 0.2860, std 0.3530.</summary>
    public static PadCropFlip FashionMnist { get; } = new([0.2860], [0.3530]);

    /// <inheritdoc />
    public IReadOnlyList<double> Mean { get; }

    /// <inheritdoc />
    public IReadOnlyList<double> Std { get; }

    /// <summary>Zero padding before the random crop.</summary>
    internal int Padding { get; }

    /// <summary>Whether samples are flipped at random.</summary>
    internal bool HorizontalFlip { get; }

    /// <summary>The output has the input's shape.</summary>
    /// <param name="input">The images' shape.</param>
    /// <returns><paramref name="input"/>.</returns>
    public ImageShape OutputShape(ImageShape input) => input;

    /// <summary>Training preprocessing of a batch: crop, flip, scale and normalise.</summary>
    /// <param name="images">uint8 images [B, C, H, W] on the training device.</param>
    /// <param name="seed">The run's seed.</param>
    /// <param name="epoch">The 0-based epoch.</param>
    /// <param name="stepInEpoch">The step within the epoch.</param>
    /// <returns>float32 [B, C, H, W] on the images' device; the caller owns it.</returns>
    public Tensor Augment(Tensor images, long seed, int epoch, int stepInEpoch)
    {
        CheckImages(images);
        var (b, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3]);
        using var scope = NewDisposeScope();
        // Drawn where the images are, so a GPU step copies nothing from the host (CPU and CUDA generators
        // give different, equally seeded streams).
        var device = images.device;
        using var generator = new Generator(SeedSequence.Derive(seed, epoch, stepInEpoch, Stream), device);
        var p = Padding;
        var offsets = randint(0, (2 * p) + 1, [b, 2], ScalarType.Int64, device, generator: generator);
        var flip = HorizontalFlip
            ? rand([b], ScalarType.Float32, device, generator: generator).lt(0.5)
            : zeros([b], ScalarType.Bool, device);

        // Row and column of the padded image that each output pixel reads; a flipped sample reads its columns backwards.
        var rows = offsets.select(1, 0).unsqueeze(1).add(arange(h, ScalarType.Int64, device));
        var forward = arange(w, ScalarType.Int64, device);
        var cols = offsets.select(1, 1).unsqueeze(1).add(where(flip.unsqueeze(1), forward.flip(0), forward));
        var wp = w + (2 * p);
        var linear = rows.unsqueeze(2).mul(wp).add(cols.unsqueeze(1)).view(b, 1, h * w);

        var padded = p > 0 ? nn.functional.pad(images, [p, p, p, p]) : images;
        var cropped = padded.reshape(b, c, -1).gather(2, linear.expand(b, c, h * w)).view(b, c, h, w);
        return PixelNormalization.Apply(cropped, Mean, Std).MoveToOuterDisposeScope();
    }

    /// <summary>Test-time preprocessing: scale and normalise only.</summary>
    /// <param name="images">uint8 images [B, C, H, W].</param>
    /// <returns>float32 [B, C, H, W]; the caller owns it.</returns>
    public Tensor Prepare(Tensor images)
    {
        CheckImages(images);
        return PixelNormalization.Apply(images, Mean, Std);
    }

    private void CheckImages(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4 || images.dtype != ScalarType.Byte || images.shape[1] != Mean.Count)
        {
            throw new ArgumentException(
                $"images must be uint8 [batch, {Mean.Count}, height, width]; got {images.dtype} {TensorChecks.Shape(images)}.", nameof(images));
        }
    }
}
