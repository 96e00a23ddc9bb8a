using static TorchSharp.torch;

namespace DTSKD.Core.Data;

/// <summary>
/// The ImageNet augmentation, batched on the training device: for training, a random resized crop (torchvision's
/// <c>RandomResizedCrop</c>: a crop of 8-100% of the image's area with an aspect ratio between 3/4 and 4/3, resized to
/// <see cref="Size"/>) and a random horizontal flip; for testing, a resize of the shorter side to
/// <see cref="TestResize"/> and a centre crop of <see cref="Size"/> (torchvision's <c>Resize(256)</c> +
/// <c>CenterCrop(224)</c>); both then normalised.
/// </summary>
/// <remarks>
/// <para>
/// The crops are drawn as torchvision draws them (ten tries, then a centre crop of the closest allowed ratio) and
/// resampled in one batched bilinear pass (<c>grid_sample</c>), so a step has no per-image loop. That bilinear resampling
/// does not antialias; the test-time resize does. Draws come from a generator seeded by (seed, epoch, step).
/// </para>
/// <para>
/// It expects the images a folder source stores: every image already resized to one size (its shorter side to, say, 256
/// pixels, centre-cropped square), from which the crops are taken.
/// </para>
/// </remarks>
public sealed class ResizedCropFlip : IBatchAugmentation
{
    private const ulong Stream = 0xA06_0002;
    private const int Tries = 10;

    /// <summary>Creates the augmentation.</summary>
    /// <param name="size">The side of the square the model sees (224 for ImageNet).</param>
    /// <param name="mean">Per-channel means; null for ImageNet's (0.485, 0.456, 0.406).</param>
    /// <param name="std">Per-channel standard deviations; null for ImageNet's (0.229, 0.224, 0.225).</param>
    /// <param name="minScale">The smallest share of the image's area a crop covers.</param>
    /// <param name="maxScale">The largest share of the image's area a crop covers.</param>
    /// <param name="minRatio">The smallest width/height ratio of a crop.</param>
    /// <param name="maxRatio">The largest width/height ratio of a crop.</param>
    /// <param name="testCropFraction">The share of the test-time resize that the centre crop keeps (0.875: 224 of 256).</param>
    /// <param name="horizontalFlip">Whether training images are flipped horizontally with probability 0.5.</param>
    public ResizedCropFlip(
        int size = 224,
        IReadOnlyList<double>? mean = null,
        IReadOnlyList<double>? std = null,
        double minScale = 0.08,
        double maxScale = 1.0,
        double minRatio = 3.0 / 4,
        double maxRatio = 4.0 / 3,
        double testCropFraction = 0.875,
        bool horizontalFlip = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        mean ??= ImageNetMean;
        std ??= ImageNetStd;
        PixelNormalization.Validate(mean, std);
        if (!(minScale > 0 && minScale <= maxScale && maxScale <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(minScale), $"The crop's area share must satisfy 0 < minScale <= maxScale <= 1; got {minScale} and {maxScale}.");
        }

        if (!(minRatio > 0 && minRatio <= maxRatio && double.IsFinite(maxRatio)))
        {
            throw new ArgumentOutOfRangeException(nameof(minRatio), $"The crop's ratios must satisfy 0 < minRatio <= maxRatio; got {minRatio} and {maxRatio}.");
        }

        if (!(testCropFraction > 0 && testCropFraction <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(testCropFraction), testCropFraction, "testCropFraction must be in (0, 1].");
        }

        Size = size;
        Mean = [.. mean];
        Std = [.. std];
        (MinScale, MaxScale, MinRatio, MaxRatio, TestCropFraction, HorizontalFlip) = (minScale, maxScale, minRatio, maxRatio, testCropFraction, horizontalFlip);
    }

    /// <summary>ImageNet's per-channel means.</summary>
    public static IReadOnlyList<double> ImageNetMean { get; } = [0.485, 0.456, 0.406];

    /// <summary>ImageNet's per-channel standard deviations.</summary>
    public static IReadOnlyList<double> ImageNetStd { get; } = [0.229, 0.224, 0.225];

    /// <summary>The side of the square the model sees.</summary>
    public int Size { get; }

    /// <summary>The shorter side test images are resized to before the centre crop: <c>round(Size / TestCropFraction)</c>.</summary>
    public int TestResize => (int)Math.Round(Size / TestCropFraction);

    /// <inheritdoc />
    public IReadOnlyList<double> Mean { get; }

    /// <inheritdoc />
    public IReadOnlyList<double> Std { get; }

    private double MinScale { get; }

    private double MaxScale { get; }

    private double MinRatio { get; }

    private double MaxRatio { get; }

    private double TestCropFraction { get; }

    private bool HorizontalFlip { get; }

    /// <inheritdoc />
    public ImageShape OutputShape(ImageShape input) => input with { Height = Size, Width = Size };

    /// <inheritdoc />
    public Tensor Augment(Tensor images, long seed, int epoch, int stepInEpoch)
    {
        CheckImages(images);
        var (b, c, height, width) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3]);
        using var scope = NewDisposeScope();
        var device = images.device;
        using var generator = new Generator(SeedSequence.Derive(seed, epoch, stepInEpoch, Stream), device);

        // Ten candidate crops per image, as torchvision draws them; the first that fits is taken.
        var area = (double)height * width;
        var scale = rand([b, Tries], ScalarType.Float64, device, generator: generator).mul(MaxScale - MinScale).add(MinScale);
        var logRatio = rand([b, Tries], ScalarType.Float64, device, generator: generator).mul(Math.Log(MaxRatio) - Math.Log(MinRatio)).add(Math.Log(MinRatio));
        var ratio = logRatio.exp();
        var w = scale.mul(area).mul(ratio).sqrt().round();
        var h = scale.mul(area).div(ratio).sqrt().round();
        var fits = w.gt(0).logical_and(w.le(width)).logical_and(h.gt(0)).logical_and(h.le(height));
        var first = fits.to(ScalarType.Int64).argmax(1, keepdim: true);
        var any = fits.any(1);

        // None fits: a centre crop of the whole image at the nearest allowed ratio.
        var inRatio = (double)width / height;
        var (fallbackW, fallbackH) = inRatio < MinRatio ? ((double)width, Math.Round(width / MinRatio))
            : inRatio > MaxRatio ? (Math.Round(height * MaxRatio), (double)height)
            : ((double)width, (double)height);
        var cropW = where(any, w.gather(1, first).squeeze(1), full([b], fallbackW, ScalarType.Float64, device));
        var cropH = where(any, h.gather(1, first).squeeze(1), full([b], fallbackH, ScalarType.Float64, device));
        var top = where(any, rand([b], ScalarType.Float64, device, generator: generator).mul(cropH.neg().add(height + 1)).floor(), cropH.neg().add(height).div(2).floor());
        var left = where(any, rand([b], ScalarType.Float64, device, generator: generator).mul(cropW.neg().add(width + 1)).floor(), cropW.neg().add(width).div(2).floor());
        var flip = HorizontalFlip
            ? rand([b], ScalarType.Float64, device, generator: generator).lt(0.5)
            : zeros([b], ScalarType.Bool, device);

        // The crop as an affine map of the output square onto the image (normalised coordinates, pixel edges at ±1).
        var sx = cropW.div(width).mul(where(flip, full([b], -1.0, ScalarType.Float64, device), ones([b], ScalarType.Float64, device)));
        var sy = cropH.div(height);
        var tx = left.mul(2).add(cropW).div(width).sub(1);
        var ty = top.mul(2).add(cropH).div(height).sub(1);
        var zero = zeros([b], ScalarType.Float64, device);
        var theta = stack([stack([sx, zero, tx], 1), stack([zero, sy, ty], 1)], 1).to(ScalarType.Float32);
        var grid = nn.functional.affine_grid(theta, [b, c, Size, Size], align_corners: false);
        var cropped = nn.functional.grid_sample(images.to(ScalarType.Float32), grid, align_corners: false);
        return PixelNormalization.Apply(cropped, Mean, Std).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public Tensor Prepare(Tensor images)
    {
        CheckImages(images);
        var (height, width) = (images.shape[2], images.shape[3]);
        using var scope = NewDisposeScope();
        var x = images.to(ScalarType.Float32);
        var shorter = Math.Min(height, width);
        if (shorter != TestResize)
        {
            // torchvision's Resize(int): the shorter side to TestResize, the other in proportion (truncated, as it does).
            long h = height == shorter ? TestResize : (long)(TestResize * (double)height / shorter);
            long w = width == shorter ? TestResize : (long)(TestResize * (double)width / shorter);
            x = nn.functional.interpolate(x, [h, w], mode: InterpolationMode.Bilinear, align_corners: false, antialias: true).clamp(0, 255);
        }

        var (top, left) = ((int)Math.Round((x.shape[2] - Size) / 2.0), (int)Math.Round((x.shape[3] - Size) / 2.0));
        if (top < 0 || left < 0)
        {
            throw new ArgumentException($"Test images of {height}x{width} pixels give {x.shape[2]}x{x.shape[3]} after the resize, smaller than the {Size}x{Size} crop.", nameof(images));
        }

        var cropped = x.narrow(2, top, Size).narrow(3, left, Size);
        return PixelNormalization.Apply(cropped, Mean, Std).MoveToOuterDisposeScope();
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
