using DTSKD.Core.Data;
using DTSKD.Core.Images;
using Spectre.Console;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// The data of a run: a standard data set by name (<see cref="StandardDatasets"/>, CIFAR-100 downloaded with its progress
/// shown), or a folder of your own images (<see cref="ImageFolder"/>, its first decoding pass shown).
/// </summary>
public static class SampleData
{
    /// <summary>The <c>--data-type</c> of a folder of images (<c>--data-path</c>).</summary>
    public const string Folder = "folder";

    /// <summary>Every <c>--data-type</c>.</summary>
    public static IReadOnlyList<string> Types { get; } = [.. StandardDatasets.Names, Folder];

    /// <summary>Loads the run's data: its splits and, for a folder, the images left out as unusable.</summary>
    /// <exception cref="FileNotFoundException">The data is missing and cannot be downloaded; the message says what to do.</exception>
    /// <exception cref="InvalidDataException">A file is damaged or of another format; the message names it.</exception>
    /// <exception cref="ImageFolderException">The folder cannot be used as it is; every problem is named.</exception>
    /// <exception cref="HttpRequestException">The download failed.</exception>
    /// <returns>The splits, the images left out (with --skip-bad-images) and, for a folder, the files the splits read (its identity).</returns>
    public static async Task<(DatasetSplits Splits, IReadOnlyList<BadImage> Skipped, IReadOnlyList<ImageFolderFile>? Files)> LoadAsync(ExperimentConfig config, IAnsiConsole console, CancellationToken cancellationToken, Uri? cifar100Source = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(console);
        if (config.DataType == Folder)
        {
            return OpenFolder(config, console, cancellationToken);
        }

        return (await LoadStandardAsync(config, console, cifar100Source, cancellationToken).ConfigureAwait(false), [], null);
    }

    private static async Task<DatasetSplits> LoadStandardAsync(ExperimentConfig config, IAnsiConsole console, Uri? cifar100Source, CancellationToken cancellationToken)
    {
        var path = config.ResolvedDataPath;
        var downloading = config.DataType == StandardDatasets.Cifar100 && config.Download && !StandardDatasets.IsPresent(config.DataType, path);
        if (!downloading)
        {
            return await StandardDatasets.LoadAsync(config.DataType, path, config.TrainLimit, config.TestLimit, download: false, cancellationToken: cancellationToken).ConfigureAwait(false);
        }

        var from = cifar100Source ?? StandardDatasets.Cifar100Source;
        console.MarkupLineInterpolated($"CIFAR-100 is not in '{path}': downloading {from} (169 MB, checked against its published size and MD5).");
        try
        {
            if (!console.Profile.Capabilities.Interactive)
            {
                return await StandardDatasets.LoadAsync(config.DataType, path, config.TrainLimit, config.TestLimit, source: from, cancellationToken: cancellationToken).ConfigureAwait(false);
            }

            return await console.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
                .StartAsync(async ctx =>
                {
                    var task = ctx.AddTask("cifar-100-binary.tar.gz");
                    var progress = new Progress<(long Bytes, long Total)>(p =>
                    {
                        task.MaxValue = p.Total;
                        task.Value = p.Bytes;
                    });
                    return await StandardDatasets.LoadAsync(config.DataType, path, config.TrainLimit, config.TestLimit, progress: progress, source: from, cancellationToken: cancellationToken).ConfigureAwait(false);
                }).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new HttpRequestException(
                $"CIFAR-100 could not be downloaded from {from} ({ex.Message}). Put cifar-100-binary.tar.gz or its extracted folder into '{path}', or try again.", ex);
        }
    }

    /// <summary>How the sample reads a folder, from the run's options.</summary>
    public static ImageFolderOptions FolderOptions(ExperimentConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return new ImageFolderOptions
        {
            ImageSize = config.ResolvedImageSize,
            Channels = config.Channels,
            Seed = config.Seed,
            Mode = config.ImageMode switch { "cached" => ImageFolderMode.Cached, "streaming" => ImageFolderMode.Streaming, _ => ImageFolderMode.Auto },
            CacheDirectory = config.ImageCache,
            Workers = Math.Max(1, config.Threads),
            SkipBadImages = config.SkipBadImages,
        };
    }

    /// <summary>
    /// What a trained run's data looks like without reading it: the image shape its images are decoded to, its classes and
    /// its test-time preparation (for a folder, as recorded in the run's config.json).
    /// </summary>
    /// <exception cref="InvalidDataException">A folder run's config.json lacks its classes or normalisation.</exception>
    public static (ImageShape Stored, int Classes, IReadOnlyList<string>? Names, IBatchAugmentation Preprocessing) Describe(ExperimentConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.DataType != Folder)
        {
            var (channels, height, width, classes) = StandardDatasets.Describe(config.DataType);
            return (new ImageShape(channels, height, width), classes, StandardDatasets.ClassNames(config.DataType, config.ResolvedDataPath), Preprocessing(config, config.Mean, config.Std));
        }

        if (config.ClassNames is not { Length: > 1 } names || config.Mean is not { } mean || config.Std is not { } std)
        {
            throw new InvalidDataException("a folder run's config.json must name its classes and normalisation (class-names, mean, std); give --run the folder training wrote.");
        }

        var options = FolderOptions(config);
        return (new ImageShape(config.Channels, options.StoredSize, options.StoredSize), names.Length, names, options.AugmentationWith(mean, std));
    }

    /// <summary>
    /// The run's augmentation and normalisation: the data's own, or with <paramref name="mean"/> and <paramref name="std"/>
    /// (a pretrained backbone's, or those a run recorded) in place of the data's statistics.
    /// </summary>
    public static IBatchAugmentation Preprocessing(ExperimentConfig config, IReadOnlyList<double>? mean, IReadOnlyList<double>? std)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (mean is null || std is null)
        {
            return StandardDatasets.Preprocessing(config.DataType);
        }

        return config.DataType == Folder ? FolderOptions(config).AugmentationWith(mean, std) : new PadCropFlip(mean, std, padding: 4);
    }

    private static (DatasetSplits Splits, IReadOnlyList<BadImage> Skipped, IReadOnlyList<ImageFolderFile> Files) OpenFolder(ExperimentConfig config, IAnsiConsole console, CancellationToken cancellationToken)
    {
        var root = config.ResolvedDataPath;
        var options = FolderOptions(config);
        ImageFolderSplits Open(IProgress<(int Done, int Total)>? progress) => ImageFolder.Open(root, options, progress, cancellationToken);
        ImageFolderSplits folder;
        if (console.Profile.Capabilities.Interactive)
        {
            folder = console.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask($"decoding the images of '{root}'", autoStart: false);
                    return Open(new Progress<(int Done, int Total)>(p =>
                    {
                        task.StartTask();
                        task.MaxValue = p.Total;
                        task.Value = p.Done;
                    }));
                });
        }
        else
        {
            folder = Open(null);
        }

        var skipped = folder.HiddenSkipped + folder.OtherFilesSkipped > 0 ? $"; skipped {folder.HiddenSkipped} hidden and {folder.OtherFilesSkipped} other files" : string.Empty;
        var left = folder.BadImages.Count > 0 ? $"; left out {folder.BadImages.Count} unusable images (skipped-images.txt)" : string.Empty;
        console.MarkupLineInterpolated(
            $"'{root}': {folder.ClassNames.Count} classes, {folder.Train.Count} training and {folder.Test.Count} test images ({folder.Layout}), {folder.Mode.ToString().ToLowerInvariant()}{skipped}{left}.");
        foreach (var note in folder.Notes)
        {
            console.MarkupLineInterpolated($"note: {note}");
        }

        if (config.TrainLimit is null && config.TestLimit is null)
        {
            return (folder, folder.BadImages, folder.Files);
        }

        var limited = new DatasetSplits(
            ImageSources.First(folder.Train, config.TrainLimit ?? int.MaxValue),
            ImageSources.First(folder.Test, config.TestLimit ?? int.MaxValue),
            folder.Preprocessing);
        return (limited, folder.BadImages, folder.Files);
    }
}
