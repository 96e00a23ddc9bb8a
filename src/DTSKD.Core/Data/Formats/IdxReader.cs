using System.Buffers.Binary;
using System.IO.Compression;
using static TorchSharp.torch;

namespace DTSKD.Core.Data;

/// <summary>
/// Reads IDX files (the format of MNIST and Fashion-MNIST), raw or gzip-compressed (<c>.gz</c>).
/// Images: magic 0x00000803 (unsigned bytes, 3 dimensions), count, rows, columns, then pixels.
/// Labels: magic 0x00000801 (unsigned bytes, 1 dimension), count, then labels.
/// </summary>
internal static class IdxReader
{
    private const int ImagesMagic = 0x00000803;
    private const int LabelsMagic = 0x00000801;

    /// <summary>Fashion-MNIST's class names, in label order (from the data set's documentation).</summary>
    public static readonly IReadOnlyList<string> FashionMnistClasses =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>Reads an image file and its label file into a 1-channel dataset.</summary>
    /// <param name="imagesFile">The images (<c>*-images-idx3-ubyte</c>, optionally <c>.gz</c>).</param>
    /// <param name="labelsFile">The labels (<c>*-labels-idx1-ubyte</c>, optionally <c>.gz</c>).</param>
    /// <param name="classCount">The number of classes (10 for MNIST and Fashion-MNIST).</param>
    /// <param name="name">A short name for logs.</param>
    /// <exception cref="InvalidDataException">A file has the wrong magic number or size, or the counts disagree; the message names the file.</exception>
    /// <param name="classNames">The classes' names, or null.</param>
    public static ImageDataset Read(string imagesFile, string labelsFile, int classCount = 10, string? name = null, IReadOnlyList<string>? classNames = null)
    {
        var images = ReadIdx(imagesFile, ImagesMagic, 3, "images (magic 0x00000803: unsigned bytes, 3 dimensions)");
        var labels = ReadIdx(labelsFile, LabelsMagic, 1, "labels (magic 0x00000801: unsigned bytes, 1 dimension)");
        if (images.Dims[0] != labels.Dims[0])
        {
            throw new InvalidDataException(
                $"'{imagesFile}' holds {images.Dims[0]} images but '{labelsFile}' holds {labels.Dims[0]} labels.");
        }

        for (var i = 0; i < labels.Data.Length; i++)
        {
            if (labels.Data[i] >= classCount)
            {
                throw new InvalidDataException($"'{labelsFile}': label {i} is {labels.Data[i]}; expected 0..{classCount - 1}.");
            }
        }

        TorchSharpRuntime.EnsureLoaded();
        var (n, h, w) = (images.Dims[0], images.Dims[1], images.Dims[2]);
        using var scope = NewDisposeScope();
        var x = tensor(images.Data, [n, 1, h, w], ScalarType.Byte);
        var y = tensor(labels.Data, [n], ScalarType.Byte).to(ScalarType.Int64);
        return ImageDataset.Own(name ?? Path.GetFileName(imagesFile), x.MoveToOuterDisposeScope(), y.MoveToOuterDisposeScope(), classCount, classNames: classNames);
    }

    /// <summary>Loads Fashion-MNIST from a folder holding its four standard files (raw or <c>.gz</c>).</summary>
    /// <param name="directory">The folder (Debian's <c>dataset-fashion-mnist</c> package puts them in <c>/usr/share/datasets/fashion-mnist</c>).</param>
    /// <param name="train">True for the 60,000 training images, false for the 10,000 test images.</param>
    public static ImageDataset LoadFashionMnist(string directory, bool train)
    {
        var prefix = train ? "train" : "t10k";
        return Read(
            Find(directory, $"{prefix}-images-idx3-ubyte"),
            Find(directory, $"{prefix}-labels-idx1-ubyte"),
            10,
            train ? "fashion-mnist-train" : "fashion-mnist-test",
            FashionMnistClasses);
    }

    private static string Find(string directory, string stem)
    {
        var candidates = new[] { stem, stem + ".gz" }.Select(f => Path.Combine(directory, f)).ToArray();
        return candidates.FirstOrDefault(File.Exists)
               ?? throw new FileNotFoundException($"Neither '{candidates[0]}' nor '{candidates[1]}' exists.", candidates[1]);
    }

    private sealed record IdxData(int[] Dims, byte[] Data);

    private static IdxData ReadIdx(string file, int magic, int dims, string what)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (!File.Exists(file))
        {
            throw new FileNotFoundException($"IDX file '{file}' does not exist.", file);
        }

        byte[] bytes;
        try
        {
            using var stream = File.OpenRead(file);
            using var buffer = new MemoryStream();
            if (file.EndsWith(".gz", StringComparison.OrdinalIgnoreCase))
            {
                using var gzip = new GZipStream(stream, CompressionMode.Decompress);
                gzip.CopyTo(buffer);
            }
            else
            {
                stream.CopyTo(buffer);
            }

            bytes = buffer.ToArray();
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"'{file}' is not a valid gzip file: {ex.Message}", ex);
        }

        var header = 4 + (4 * dims);
        if (bytes.Length < header)
        {
            throw new InvalidDataException($"'{file}' is too short for an IDX header of {what}: {bytes.Length} bytes.");
        }

        var found = BinaryPrimitives.ReadInt32BigEndian(bytes);
        if (found != magic)
        {
            throw new InvalidDataException($"'{file}' is not an IDX file of {what}: magic number is 0x{found:x8}.");
        }

        var sizes = Enumerable.Range(0, dims).Select(i => BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4 + (4 * i)))).ToArray();
        var expected = sizes.Aggregate(1L, (a, s) => a * s);
        if (sizes.Any(s => s <= 0) || bytes.Length - header != expected)
        {
            throw new InvalidDataException(
                $"'{file}': the header says [{string.Join(" x ", sizes)}] = {expected} bytes of data, but the file has {bytes.Length - header} (truncated?).");
        }

        return new IdxData(sizes, bytes[header..]);
    }
}
