using static TorchSharp.torch;

namespace DTSKD.Core.Data;

/// <summary>
/// Reads the binary versions of CIFAR-10 and CIFAR-100 (the <c>*-binary.tar.gz</c> archives of the dataset's
/// authors). CIFAR-100 records are 3,074 bytes: coarse label, fine label, then 3,072 pixels (1,024 red,
/// 1,024 green, 1,024 blue, each row-major 32 × 32). CIFAR-10 records are 3,073 bytes: label, then pixels.
/// </summary>
internal static class CifarReader
{
    /// <summary>Bytes of one CIFAR-100 record.</summary>
    public const int Cifar100RecordSize = 3074;

    /// <summary>Bytes of one CIFAR-10 record.</summary>
    public const int Cifar10RecordSize = 3073;

    private const int Pixels = 3 * 32 * 32;

    /// <summary>Reads a CIFAR-100 binary file (<c>train.bin</c> or <c>test.bin</c>): its fine labels (the coarse ones are checked, not kept).</summary>
    /// <param name="file">The path of the file.</param>
    /// <exception cref="InvalidDataException">The file is not a whole number of valid records; the message names the file.</exception>
    /// <param name="classNames">The fine labels' names, or null.</param>
    public static ImageDataset ReadCifar100(string file, IReadOnlyList<string>? classNames = null)
    {
        var bytes = ReadRecords(file, Cifar100RecordSize, "CIFAR-100");
        return Decode(bytes, Cifar100RecordSize, [(0, 20, "coarse label"), (1, 100, "fine label")], file, "cifar100-" + Path.GetFileNameWithoutExtension(file), 100, classNames);
    }

    /// <summary>Reads and concatenates CIFAR-10 binary files (<c>data_batch_1.bin</c>..<c>data_batch_5.bin</c>, or <c>test_batch.bin</c>).</summary>
    /// <param name="files">The paths of the files, in order.</param>
    /// <exception cref="InvalidDataException">A file is not a whole number of valid records; the message names the file.</exception>
    public static ImageDataset ReadCifar10(params string[] files) => ReadCifar10(files, null);

    private static ImageDataset ReadCifar10(string[] files, IReadOnlyList<string>? classNames)
    {
        ArgumentNullException.ThrowIfNull(files);
        if (files.Length == 0)
        {
            throw new ArgumentException("Give at least one CIFAR-10 file.", nameof(files));
        }

        var parts = files.Select(f => ReadRecords(f, Cifar10RecordSize, "CIFAR-10")).ToArray();
        var all = new byte[parts.Sum(p => (long)p.Length)];
        var offset = 0;
        foreach (var part in parts)
        {
            part.CopyTo(all, offset);
            offset += part.Length;
        }

        var name = files.Length == 1 ? "cifar10-" + Path.GetFileNameWithoutExtension(files[0]) : "cifar10-train";
        return Decode(all, Cifar10RecordSize, [(0, 10, "label")], string.Join(", ", files), name, 10, classNames);
    }

    /// <summary>Loads CIFAR-100 from the folder the binary archive extracts to (it holds <c>train.bin</c> and <c>test.bin</c>).</summary>
    /// <param name="directory">The folder, usually <c>.../cifar-100-binary</c>.</param>
    /// <param name="train">True for the 50,000 training images, false for the 10,000 test images.</param>
    public static ImageDataset LoadCifar100(string directory, bool train) =>
        ReadCifar100(Path.Combine(directory, train ? "train.bin" : "test.bin"), ClassNames(Path.Combine(directory, "fine_label_names.txt"), 100));

    /// <summary>Loads CIFAR-10 from the folder its binary archive extracts to (<c>.../cifar-10-batches-bin</c>).</summary>
    /// <param name="directory">The folder.</param>
    /// <param name="train">True for <c>data_batch_1..5.bin</c>, false for <c>test_batch.bin</c>.</param>
    public static ImageDataset LoadCifar10(string directory, bool train) =>
        ReadCifar10(
            train ? [.. Enumerable.Range(1, 5).Select(i => Path.Combine(directory, $"data_batch_{i}.bin"))] : [Path.Combine(directory, "test_batch.bin")],
            ClassNames(Path.Combine(directory, "batches.meta.txt"), 10));

    /// <summary>The class names of a label file that the archives ship (one name per line), or null if it is missing or does not name every class.</summary>
    internal static string[]? ClassNames(string file, int classCount)
    {
        if (!File.Exists(file))
        {
            return null;
        }

        var names = File.ReadAllLines(file).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        return names.Length == classCount ? names : null;
    }

    private static byte[] ReadRecords(string file, int recordSize, string format)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (!File.Exists(file))
        {
            throw new FileNotFoundException($"{format} file '{file}' does not exist.", file);
        }

        var bytes = File.ReadAllBytes(file);
        if (bytes.Length == 0 || bytes.Length % recordSize != 0)
        {
            throw new InvalidDataException(
                $"'{file}' is not a {format} binary file: expected a whole number of {recordSize}-byte records, found {bytes.Length} bytes " +
                $"({bytes.Length / recordSize} records and {bytes.Length % recordSize} bytes left over; truncated or a different format?).");
        }

        return bytes;
    }

    private static ImageDataset Decode(byte[] bytes, int recordSize, (int Offset, int Classes, string What)[] labels, string file, string name, int classCount, IReadOnlyList<string>? classNames)
    {
        var n = bytes.Length / recordSize;
        for (var i = 0; i < labels.Length; i++)
        {
            var (offset, classes, what) = labels[i];
            for (var r = 0; r < n; r++)
            {
                var value = bytes[(r * (long)recordSize) + offset];
                if (value >= classes)
                {
                    throw new InvalidDataException(
                        $"'{file}': record {r} has {what} {value}; expected 0..{classes - 1}. Is this the right CIFAR variant?");
                }
            }
        }

        TorchSharpRuntime.EnsureLoaded();
        using var scope = NewDisposeScope();
        var records = tensor(bytes, [n, recordSize], ScalarType.Byte);
        var pixelOffset = recordSize - Pixels;
        var images = records.narrow(1, pixelOffset, Pixels).reshape(n, 3, 32, 32).contiguous();
        var fine = records.select(1, pixelOffset - 1).to(ScalarType.Int64);
        return ImageDataset.Own(name, images.MoveToOuterDisposeScope(), fine.MoveToOuterDisposeScope(), classCount, classNames);
    }
}
