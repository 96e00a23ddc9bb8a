using DTSKD.Core.Data;

namespace DTSKD.Core.Images;

/// <summary>An image folder's training and test splits, with its augmentation and how the folder was read.</summary>
public sealed record ImageFolderSplits : DatasetSplits
{
    internal ImageFolderSplits(
        IImageSource train, IImageSource test, IBatchAugmentation preprocessing, IReadOnlyList<string> classNames, ImageFolderLayout layout, ImageFolderMode mode,
        int hiddenSkipped, int otherFilesSkipped, IReadOnlyList<BadImage> badImages, string? cacheFile, IReadOnlyList<string> notes, IReadOnlyList<ImageFolderFile> files)
        : base(train, test, preprocessing)
    {
        ClassNames = classNames;
        Layout = layout;
        Mode = mode;
        HiddenSkipped = hiddenSkipped;
        OtherFilesSkipped = otherFilesSkipped;
        BadImages = badImages;
        CacheFile = cacheFile;
        Notes = notes;
        Files = files;
    }

    /// <summary>
    /// Every image the splits read, training images first, each split in its samples' order: the folder's identity (record
    /// it with a run, compare it before resuming or evaluating on the folder again).
    /// </summary>
    public IReadOnlyList<ImageFolderFile> Files { get; }

    /// <summary>The classes, in index order: the class folders' names, in ordinal order (torchvision's <c>classes</c>).</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Where the test split came from.</summary>
    public ImageFolderLayout Layout { get; }

    /// <summary>How the splits are fed: <see cref="ImageFolderMode.Cached"/> or <see cref="ImageFolderMode.Streaming"/>.</summary>
    public ImageFolderMode Mode { get; }

    /// <summary>Hidden files skipped (names starting with a dot, and everything in hidden folders).</summary>
    public int HiddenSkipped { get; }

    /// <summary>Files skipped because their extension is not an image's.</summary>
    public int OtherFilesSkipped { get; }

    /// <summary>The images left out because they cannot be used (with <see cref="ImageFolderOptions.SkipBadImages"/>), each with its reason.</summary>
    public IReadOnlyList<BadImage> BadImages { get; }

    /// <summary>
    /// What reading the folder did not follow, one line each: a symbolic link that leads back to a folder above it (a cycle,
    /// which torchvision walks until the OS refuses), a folder or file reached twice through links (listed once).
    /// </summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>The memory-mapped cache file the splits read, or null when streaming.</summary>
    public string? CacheFile { get; }
}
