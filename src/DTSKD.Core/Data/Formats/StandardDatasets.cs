namespace DTSKD.Core.Data;

/// <summary>
/// The data sets the recipe and the examples use, by name: <c>cifar100</c> (downloaded and checked when missing),
/// <c>cifar10</c> and <c>fashion-mnist</c>, each with its preprocessing and class names.
/// </summary>
public static class StandardDatasets
{
    /// <summary>CIFAR-100 (binary version): 50,000 + 10,000 RGB 32×32 images, 100 classes.</summary>
    public const string Cifar100 = "cifar100";

    /// <summary>CIFAR-10 (binary version): 50,000 + 10,000 RGB 32×32 images, 10 classes.</summary>
    public const string Cifar10 = "cifar10";

    /// <summary>Fashion-MNIST (IDX, raw or gzip): 60,000 + 10,000 grayscale 28×28 images, 10 classes.</summary>
    public const string FashionMnist = "fashion-mnist";

    private static readonly string[] IdxStems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

    /// <summary>The known names.</summary>
    public static IReadOnlyList<string> Names { get; } = [Cifar100, Cifar10, FashionMnist];

    /// <summary>Where CIFAR-100's archive is downloaded from by default (its authors' address).</summary>
    public static Uri Cifar100Source => Cifar100Download.OfficialSource;

    /// <summary>The usual folder of a data set: <c>data</c> for CIFAR, <c>/usr/share/datasets/fashion-mnist</c> (Debian's package) for Fashion-MNIST.</summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    public static string DefaultPath(string name) => Check(name) == FashionMnist ? "/usr/share/datasets/fashion-mnist" : "data";

    /// <summary>The folder inside <paramref name="path"/> that holds the data set's files.</summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    /// <param name="path">The data folder.</param>
    internal static string FilesFolder(string name, string path) => Check(name) switch
    {
        Cifar100 => Path.Combine(path, Cifar100Download.FolderName),
        Cifar10 => Path.Combine(path, "cifar-10-batches-bin"),
        _ => path,
    };

    /// <summary>A data set's image format and number of classes, without reading it.</summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    public static (int Channels, int Height, int Width, int Classes) Describe(string name) => Check(name) switch
    {
        Cifar100 => (3, 32, 32, 100),
        Cifar10 => (3, 32, 32, 10),
        _ => (1, 28, 28, 10),
    };

    /// <summary>A data set's preprocessing: the recipe's crop and flip, and its normalisation.</summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    public static IBatchAugmentation Preprocessing(string name) => Check(name) == FashionMnist ? PadCropFlip.FashionMnist : PadCropFlip.Cifar;

    /// <summary>A data set's class names, without reading its images: CIFAR's label files in the data folder, Fashion-MNIST's ten names.</summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    /// <param name="path">The data folder; null for <see cref="DefaultPath"/>.</param>
    /// <returns>One name per class, or null when the data folder does not hold them.</returns>
    public static IReadOnlyList<string>? ClassNames(string name, string? path = null)
    {
        var folder = FilesFolder(name, path ?? DefaultPath(name));
        return name switch
        {
            Cifar100 => CifarReader.ClassNames(Path.Combine(folder, "fine_label_names.txt"), 100),
            Cifar10 => CifarReader.ClassNames(Path.Combine(folder, "batches.meta.txt"), 10),
            _ => IdxReader.FashionMnistClasses,
        };
    }

    /// <summary>Whether the data set's files are in <paramref name="path"/> (without reading them).</summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    /// <param name="path">The data folder.</param>
    public static bool IsPresent(string name, string path) => Check(name) switch
    {
        Cifar100 => Cifar100Download.IsPresent(path),
        Cifar10 => File.Exists(Path.Combine(FilesFolder(name, path), "test_batch.bin")),
        _ => IdxStems.All(stem => File.Exists(Path.Combine(path, stem)) || File.Exists(Path.Combine(path, stem + ".gz"))),
    };

    /// <summary>Loads a data set's two splits, downloading CIFAR-100 first when it is missing and <paramref name="download"/> is set.</summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    /// <param name="path">The data folder; null for <see cref="DefaultPath"/>.</param>
    /// <param name="trainLimit">Keep only the first N training images (quick runs); null for all.</param>
    /// <param name="testLimit">Keep only the first N test images; null for all.</param>
    /// <param name="download">Whether a missing CIFAR-100 is downloaded (the other data sets are never downloaded).</param>
    /// <param name="progress">Receives (bytes so far, total bytes) while downloading.</param>
    /// <param name="source">Where to download CIFAR-100 from (default <see cref="Cifar100Source"/>; a <c>file:</c> URI works too).</param>
    /// <param name="cancellationToken">Cancels a download.</param>
    /// <returns>The splits; the caller disposes them.</returns>
    /// <exception cref="ArgumentException">The name is unknown or a limit is not positive.</exception>
    /// <exception cref="FileNotFoundException">The data set is not in the folder (and is not downloaded); the message says what to do.</exception>
    /// <exception cref="InvalidDataException">A file is not in the expected format; the message names it.</exception>
    public static async Task<DatasetSplits> LoadAsync(
        string name,
        string? path = null,
        int? trainLimit = null,
        int? testLimit = null,
        bool download = true,
        IProgress<(long Bytes, long Total)>? progress = null,
        Uri? source = null,
        CancellationToken cancellationToken = default)
    {
        Check(name);
        if (trainLimit <= 0 || testLimit <= 0)
        {
            throw new ArgumentException($"Limits must be greater than 0; got train {trainLimit}, test {testLimit}.", trainLimit <= 0 ? nameof(trainLimit) : nameof(testLimit));
        }

        path ??= DefaultPath(name);
        var folder = FilesFolder(name, path);
        if (!IsPresent(name, path))
        {
            if (Incomplete(name, path) is { } incomplete)
            {
                throw new FileNotFoundException(incomplete, folder);
            }

            if (name != Cifar100 || !download)
            {
                throw new FileNotFoundException(await MissingMessageAsync(name, path, cancellationToken).ConfigureAwait(false), folder);
            }

            folder = await Cifar100Download.EnsureAsync(path, progress, source, cancellationToken: cancellationToken).ConfigureAwait(false);
        }

        var (train, test) = name switch
        {
            Cifar100 => (CifarReader.LoadCifar100(folder, train: true), CifarReader.LoadCifar100(folder, train: false)),
            Cifar10 => (CifarReader.LoadCifar10(folder, train: true), CifarReader.LoadCifar10(folder, train: false)),
            _ => (IdxReader.LoadFashionMnist(folder, train: true), IdxReader.LoadFashionMnist(folder, train: false)),
        };
        return new DatasetSplits(Limit(train, trainLimit), Limit(test, testLimit), Preprocessing(name));
    }

    /// <summary>One line for a user whose data set is missing: where it was looked for and how to get it.</summary>
    private static async Task<string> MissingMessageAsync(string name, string path, CancellationToken ct)
    {
        if (name == Cifar100 && await Cifar100Download.WhyNotTheArchiveAsync(Path.Combine(path, Cifar100Download.ArchiveName), ct).ConfigureAwait(false) is { } why)
        {
            return $"CIFAR-100 is not extracted in '{path}', and '{Path.Combine(path, Cifar100Download.ArchiveName)}' is not its archive ({why}): delete it, then allow the download or put the right file there.";
        }

        return name switch
        {
            Cifar100 => $"CIFAR-100 is not in '{FilesFolder(name, path)}' (train.bin, test.bin); allow the download, or put {Cifar100Download.ArchiveName} or its extracted folder into '{path}'.",
            Cifar10 => $"CIFAR-10 is not in '{FilesFolder(name, path)}': extract cifar-10-binary.tar.gz into '{path}' first.",
            _ => $"Fashion-MNIST is not in '{path}' (train-images-idx3-ubyte[.gz], t10k-images-idx3-ubyte[.gz] and their labels): on Debian or Ubuntu, `sudo apt-get install dataset-fashion-mnist`.",
        };
    }

    /// <summary>When the data set's folder is there but lacks some of its files, one line naming them; otherwise null.</summary>
    private static string? Incomplete(string name, string path)
    {
        var folder = FilesFolder(name, path);
        string[] files = name switch
        {
            Cifar100 => ["train.bin", "test.bin"],
            Cifar10 => [.. Enumerable.Range(1, 5).Select(i => $"data_batch_{i}.bin"), "test_batch.bin"],
            _ => [.. IdxStems],
        };
        bool Has(string f) => File.Exists(Path.Combine(folder, f)) || (name == FashionMnist && File.Exists(Path.Combine(folder, f + ".gz")));
        var missing = files.Where(f => !Has(f)).ToList();
        if (!Directory.Exists(folder) || missing.Count == files.Length)
        {
            return null;
        }

        var label = name == Cifar100 ? "CIFAR-100" : name == Cifar10 ? "CIFAR-10" : "Fashion-MNIST";
        return $"{label} in '{folder}' is incomplete: {string.Join(", ", missing)} {(missing.Count == 1 ? "is" : "are")} missing ({string.Join(", ", files.Where(Has))} {(files.Length - missing.Count == 1 ? "is" : "are")} there).";
    }

    private static ImageDataset Limit(ImageDataset data, int? limit)
    {
        if (limit is not { } n || n >= data.Count)
        {
            return data;
        }

        using (data)
        {
            return data.Take(n);
        }
    }

    private static string Check(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return Names.Contains(name, StringComparer.Ordinal)
            ? name
            : throw new ArgumentException($"Unknown data set '{name}'. Known data sets: {string.Join(", ", Names)}.", nameof(name));
    }
}
