using DTSKD.Core.Deployment;
namespace DTSKD.Core.Images;

/// <summary>How <see cref="ImageFolder.Open"/> reads a folder of images. The defaults suit small images (32 pixels, RGB, cached).</summary>
public sealed class ImageFolderOptions
{
    /// <summary>The side of the square images the model sees (32 for CIFAR-like data, 224 for ImageNet-like data).</summary>
    public int ImageSize { get; set; } = 32;

    /// <summary>3 for RGB, 1 for grayscale: what every image becomes, whatever it is stored as.</summary>
    public int Channels { get; set; } = 3;

    /// <summary>The augmentation the splits come with; its kind decides the size images are stored at (<see cref="ImageFolderAugmentation"/>).</summary>
    public ImageFolderAugmentation Augmentation { get; set; } = ImageFolderAugmentation.Auto;

    /// <summary>When the folder has no <c>train</c>/<c>val</c> (or <c>test</c>) split: the share of each class held out for testing.</summary>
    public double HoldOutFraction { get; set; } = 0.1;

    /// <summary>The seed of the hold-out draw.</summary>
    public long Seed { get; set; } = 27;

    /// <summary>Cached, streamed, or chosen by the memory budget.</summary>
    public ImageFolderMode Mode { get; set; } = ImageFolderMode.Auto;

    /// <summary>
    /// The most bytes of decoded images <see cref="ImageFolderMode.Auto"/> caches; larger folders are streamed. Null (default)
    /// for half of this machine's memory.
    /// </summary>
    public long? MemoryBudgetBytes { get; set; }

    /// <summary>Where cache files go; null (default) for <c>$XDG_CACHE_HOME/dtskd/images</c> (<c>~/.cache/dtskd/images</c>).</summary>
    public string? CacheDirectory { get; set; }

    /// <summary>Threads that decode images (default: the machine's cores).</summary>
    public int Workers { get; set; } = Environment.ProcessorCount;

    /// <summary>Batches a streaming reader decodes ahead of the model.</summary>
    public int Prefetch { get; set; } = 4;

    /// <summary>False (default) to refuse a folder with unreadable images (all of them named); true to leave them out (listed in <see cref="ImageFolderSplits.BadImages"/>).</summary>
    public bool SkipBadImages { get; set; }

    /// <summary>The largest image (width x height) decoded; larger ones count as bad (a possible decompression bomb).</summary>
    public long MaxPixels { get; set; } = ImageDecoder.DefaultMaxPixels;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first option out of range.</summary>
    public void Validate()
    {
        if (ImageSize < 8 || ImageSize > 4096)
        {
            throw new ArgumentOutOfRangeException(nameof(ImageSize), ImageSize, "ImageSize must be between 8 and 4096 pixels.");
        }

        if (Channels is not (1 or 3))
        {
            throw new ArgumentOutOfRangeException(nameof(Channels), Channels, "Channels must be 1 (grayscale) or 3 (RGB).");
        }

        if (!(HoldOutFraction >= 0 && HoldOutFraction < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(HoldOutFraction), HoldOutFraction, "HoldOutFraction must be in [0, 1).");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(Workers, 1, nameof(Workers));
        ArgumentOutOfRangeException.ThrowIfLessThan(Prefetch, 1, nameof(Prefetch));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxPixels, 1, nameof(MaxPixels));
        if (MemoryBudgetBytes < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MemoryBudgetBytes), MemoryBudgetBytes, "MemoryBudgetBytes must be 0 or more.");
        }
    }

    /// <summary>The augmentation kind <see cref="ImageFolderAugmentation.Auto"/> stands for at this size.</summary>
    public ImageFolderAugmentation ResolvedAugmentation =>
        Augmentation != ImageFolderAugmentation.Auto ? Augmentation : ImageSize >= 96 ? ImageFolderAugmentation.ResizedCrop : ImageFolderAugmentation.PadCropFlip;

    /// <summary>The side images are stored at (and that <see cref="ImageDecoder"/> should decode to for this model): the model's size, or its size / 0.875 for the resized crop (256 for 224).</summary>
    public int StoredSize => ResolvedAugmentation == ImageFolderAugmentation.ResizedCrop ? (int)Math.Round(ImageSize / 0.875) : ImageSize;

    /// <summary>The augmentation of these options with a given normalisation: what <see cref="ImageFolder.Open"/> gives its splits (with the folder's measured mean and std).</summary>
    /// <param name="mean">Per-channel means of the [0, 1]-scaled pixels.</param>
    /// <param name="std">Per-channel standard deviations.</param>
    public Data.IBatchAugmentation AugmentationWith(IReadOnlyList<double> mean, IReadOnlyList<double> std) =>
        ResolvedAugmentation == ImageFolderAugmentation.ResizedCrop
            ? new Data.ResizedCropFlip(ImageSize, mean, std)
            : new Data.PadCropFlip(mean, std, padding: Math.Max(1, ImageSize / 8));

    internal ImageFolderOptions Clone() => (ImageFolderOptions)MemberwiseClone();
}
