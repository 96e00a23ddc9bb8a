using DTSKD.Core.Data;
using DTSKD.Core.Deployment;
using static TorchSharp.torch;

namespace DTSKD.Core.Images;

/// <summary>
/// Opens a folder of your own images as training and test splits for <see cref="Training.Trainer"/>, the way torchvision's
/// <c>ImageFolder</c> reads it: <c>root/&lt;class&gt;/...</c> (a seeded, stratified share of each class held out for
/// testing), or <c>root/train/&lt;class&gt;</c> with <c>root/val</c> or <c>root/test</c>.
/// </summary>
/// <remarks>
/// <para>
/// Every image is decoded once before training starts (<see cref="ImageDecoder"/>): into a memory-mapped cache when the
/// decoded set fits <see cref="ImageFolderOptions.MemoryBudgetBytes"/>, else only to check it, and then streamed by worker
/// threads every epoch. So unreadable, truncated, empty or oversized images are all found and named up front; with
/// <see cref="ImageFolderOptions.SkipBadImages"/> they are left out instead. The result of that pass is kept under a key of
/// the file list, sizes, modification times and options: an unchanged folder opens at once the next time, a changed one
/// is decoded anew, never mixed with an old cache.
/// </para>
/// <para>
/// The splits' augmentation normalises with the training images' own per-channel mean and standard deviation, measured in
/// that pass.
/// </para>
/// </remarks>
public static class ImageFolder
{
    /// <summary>Opens a folder.</summary>
    /// <param name="root">The folder.</param>
    /// <param name="options">How to read it; null for the defaults (32-pixel RGB images).</param>
    /// <param name="progress">Receives (images decoded, images) during the first pass over a folder.</param>
    /// <param name="cancellationToken">Stops that pass; nothing half-written is left.</param>
    /// <returns>The splits; dispose them when done.</returns>
    /// <exception cref="ImageFolderException">The folder has no usable classes, or holds images that cannot be used (<see cref="ImageFolderException.Problems"/> names each), or the cache folder cannot be written.</exception>
    public static ImageFolderSplits Open(string root, ImageFolderOptions? options = null, IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(root);
        options = (options ?? new ImageFolderOptions()).Clone();
        options.Validate();
        TorchSharpRuntime.EnsureLoaded();
        var scan = ImageFolderScan.Read(root, options.HoldOutFraction, options.Seed);
        if (scan.Test.Count == 0)
        {
            throw new ImageFolderException($"'{root}' gives no test images: set a hold-out fraction above 0, or add a val or test folder.");
        }

        var shape = new ImageShape(options.Channels, options.StoredSize, options.StoredSize);
        var total = scan.Train.Count + scan.Test.Count;
        var budget = options.MemoryBudgetBytes ?? (GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2);
        var mode = options.Mode != ImageFolderMode.Auto ? options.Mode : total * shape.Bytes <= budget ? ImageFolderMode.Cached : ImageFolderMode.Streaming;

        var directory = options.CacheDirectory ?? ImageCache.DefaultDirectory;
        ImageCache.Prepare(directory);
        var (key, family) = ImageCache.Keys(scan, options);
        var cached = mode == ImageFolderMode.Cached;
        var pass = ImageCache.Find(directory, key, needPixels: cached, shape.Bytes, scan)
                   ?? ImageCache.Build(directory, key, family, scan, options, writePixels: cached, progress, cancellationToken);
        if (pass.Bad.Count > 0 && !options.SkipBadImages)
        {
            throw new ImageFolderException(
                [.. pass.Bad.Select(b => $"'{b.Path}' {b.Reason}.")],
                $"{pass.Bad.Count:N0} of {total:N0} images in '{root}' cannot be used (listed above): fix or remove them, or skip them (ImageFolderOptions.SkipBadImages, the sample's --skip-bad-images).");
        }

        var bad = pass.Bad.Select(b => b.Path).ToHashSet(StringComparer.Ordinal);
        List<ImageEntry> train = [.. scan.Train.Where(e => !bad.Contains(e.Path))];
        List<ImageEntry> test = [.. scan.Test.Where(e => !bad.Contains(e.Path))];
        CheckClasses(root, scan.Classes, train);
        var name = Path.GetFileName(Path.GetFullPath(root).TrimEnd(Path.DirectorySeparatorChar));
        IImageSource trainSource, testSource;
        string? cacheFile = null;
        if (cached)
        {
            cacheFile = Path.Combine(directory, pass.Pixels!);
            (trainSource, testSource) = Mapped(cacheFile, shape, train, test, scan.Classes, name);
        }
        else
        {
            trainSource = new StreamingImageSource(name + "-train", train, scan.Classes, shape, options);
            testSource = new StreamingImageSource(name + "-test", test, scan.Classes, shape, options);
        }

        return new ImageFolderSplits(trainSource, testSource, options.AugmentationWith(pass.Mean, pass.Std), scan.Classes, scan.Layout, mode, scan.HiddenSkipped, scan.OtherFilesSkipped, pass.Bad, cacheFile, scan.Notes,
            [.. train.Select(e => File(e, "train", scan.Classes)), .. test.Select(e => File(e, "test", scan.Classes))]);
    }

    private static ImageFolderFile File(ImageEntry e, string split, IReadOnlyList<string> classes) =>
        new(e.RelativePath, split, classes[e.Label], e.Size, new DateTime(e.ModifiedTicks, DateTimeKind.Utc));

    /// <summary>The cache file as one memory-mapped uint8 tensor, its rows split into the two sets (no copy is made).</summary>
    private static (IImageSource Train, IImageSource Test) Mapped(string file, ImageShape shape, List<ImageEntry> train, List<ImageEntry> test, IReadOnlyList<string> classes, string name)
    {
        using var scope = NewDisposeScope();
        var all = from_file(file, shared: false, size: (train.Count + test.Count) * shape.Bytes, dtype: ScalarType.Byte)
            .view(train.Count + test.Count, shape.Channels, shape.Height, shape.Width);
        ImageDataset Split(List<ImageEntry> entries, long start, string suffix) => ImageDataset.Adopt(
            all.narrow(0, start, entries.Count).MoveToOuterDisposeScope(),
            tensor(entries.Select(e => (long)e.Label).ToArray()).MoveToOuterDisposeScope(),
            classes.Count, $"{name}-{suffix}", classes);
        return (Split(train, 0, "train"), Split(test, train.Count, "test"));
    }

    /// <summary>Every class still needs training images once bad ones are left out.</summary>
    private static void CheckClasses(string root, IReadOnlyList<string> classes, List<ImageEntry> train)
    {
        var empty = Enumerable.Range(0, classes.Count).Where(c => train.All(e => e.Label != c)).Select(c => classes[c]).ToList();
        if (empty.Count > 0)
        {
            throw new ImageFolderException($"'{root}': {string.Join(", ", empty)} {(empty.Count == 1 ? "has" : "have")} no usable training images.");
        }
    }
}
