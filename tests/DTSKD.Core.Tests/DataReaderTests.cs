using System.IO.Compression;
using DTSKD.Core.Data;

namespace DTSKD.Core.Tests;

public sealed class DataReaderTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-data-");

    public void Dispose() => _dir.Delete(recursive: true);

    internal static byte[] CifarRecords(int count, bool cifar100, int seed)
    {
        var rng = new Random(seed);
        var size = cifar100 ? 3074 : 3073;
        var bytes = new byte[count * size];
        rng.NextBytes(bytes);
        for (var r = 0; r < count; r++)
        {
            if (cifar100)
            {
                bytes[r * size] = (byte)(r % 20);
                bytes[(r * size) + 1] = (byte)((r * 7) % 100);
            }
            else
            {
                bytes[r * size] = (byte)(r % 10);
            }
        }

        return bytes;
    }

    [Fact]
    public void Cifar100_records_decode_to_planar_rgb_with_fine_and_coarse_labels()
    {
        var file = Path.Combine(_dir.FullName, "train.bin");
        var bytes = CifarRecords(5, cifar100: true, seed: 1);
        File.WriteAllBytes(file, bytes);

        using var ds = CifarReader.ReadCifar100(file);

        ds.Count.Should().Be(5);
        ds.Images.shape.Should().Equal(5, 3, 32, 32);
        ds.ClassCount.Should().Be(100);
        ds.Labels.data<long>().ToArray().Should().Equal(0, 7, 14, 21, 28);
        // The coarse labels are checked, not kept: a record with superclass 20 is not CIFAR-100.
        var bad = (byte[])bytes.Clone();
        bad[3 * 3074] = 20;
        var badFile = Path.Combine(_dir.FullName, "bad-coarse.bin");
        File.WriteAllBytes(badFile, bad);
        ((Action)(() => CifarReader.ReadCifar100(badFile))).Should().Throw<InvalidDataException>().WithMessage("*record 3 has coarse label 20*");
        // Record 3, green plane (offset 1024), row 5, column 9.
        ds.Images[3, 1, 5, 9].item<byte>().Should().Be(bytes[(3 * 3074) + 2 + 1024 + (5 * 32) + 9]);
        ds.Images[4, 2, 31, 31].item<byte>().Should().Be(bytes[(5 * 3074) - 1]);
    }

    [Fact]
    public void Cifar10_files_are_concatenated_in_order()
    {
        var a = Path.Combine(_dir.FullName, "data_batch_1.bin");
        var b = Path.Combine(_dir.FullName, "data_batch_2.bin");
        File.WriteAllBytes(a, CifarRecords(3, cifar100: false, seed: 2));
        var second = CifarRecords(2, cifar100: false, seed: 3);
        File.WriteAllBytes(b, second);

        using var ds = CifarReader.ReadCifar10(a, b);

        ds.Count.Should().Be(5);
        ds.Labels.data<long>().ToArray().Should().Equal(0, 1, 2, 0, 1);
        ds.Images[4, 0, 0, 0].item<byte>().Should().Be(second[3073 + 1]);
    }

    [Fact]
    public void A_truncated_cifar_file_is_a_clear_error_naming_the_file_and_the_record_size()
    {
        var file = Path.Combine(_dir.FullName, "test.bin");
        File.WriteAllBytes(file, CifarRecords(4, cifar100: true, seed: 4)[..^100]);

        var act = () => CifarReader.ReadCifar100(file);

        act.Should().Throw<InvalidDataException>().WithMessage($"*'{file}'*3074-byte records*12196 bytes*");
    }

    [Fact]
    public void A_cifar10_file_read_as_cifar100_fails_on_its_labels_or_size()
    {
        var file = Path.Combine(_dir.FullName, "wrong.bin");
        var bytes = CifarRecords(2, cifar100: true, seed: 5);
        bytes[3074 + 1] = 200;
        File.WriteAllBytes(file, bytes);
        ((Action)(() => CifarReader.ReadCifar100(file))).Should().Throw<InvalidDataException>().WithMessage("*record 1 has fine label 200*0..99*");
        ((Action)(() => CifarReader.ReadCifar100(Path.Combine(_dir.FullName, "none.bin")))).Should().Throw<FileNotFoundException>();
    }

    internal static byte[] Idx(int magic, int[] dims, byte[] data)
    {
        var header = new byte[4 + (4 * dims.Length)];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header, magic);
        for (var i = 0; i < dims.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + (4 * i)), dims[i]);
        }

        return [.. header, .. data];
    }

    private static void WriteGz(string path, byte[] bytes)
    {
        using var file = File.Create(path);
        using var gz = new GZipStream(file, CompressionLevel.Fastest);
        gz.Write(bytes);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Idx_images_and_labels_are_read_raw_or_gzipped(bool gzip)
    {
        var pixels = Enumerable.Range(0, 3 * 4 * 5).Select(i => (byte)i).ToArray();
        var images = Idx(0x803, [3, 4, 5], pixels);
        var labels = Idx(0x801, [3], [9, 0, 4]);
        var ext = gzip ? ".gz" : string.Empty;
        var imagesPath = Path.Combine(_dir.FullName, "train-images-idx3-ubyte" + ext);
        var labelsPath = Path.Combine(_dir.FullName, "train-labels-idx1-ubyte" + ext);
        if (gzip)
        {
            WriteGz(imagesPath, images);
            WriteGz(labelsPath, labels);
        }
        else
        {
            File.WriteAllBytes(imagesPath, images);
            File.WriteAllBytes(labelsPath, labels);
        }

        using var ds = IdxReader.Read(imagesPath, labelsPath);

        ds.Images.shape.Should().Equal(3, 1, 4, 5);
        ds.Images[2, 0, 3, 4].item<byte>().Should().Be(59);
        ds.Labels.data<long>().ToArray().Should().Equal(9, 0, 4);
    }

    [Fact]
    public void Idx_errors_name_the_file_and_what_was_expected()
    {
        var good = Idx(0x801, [2], [1, 2]);
        var labels = Path.Combine(_dir.FullName, "labels");
        File.WriteAllBytes(labels, good);
        var wrongMagic = Path.Combine(_dir.FullName, "magic");
        File.WriteAllBytes(wrongMagic, Idx(0x801, [2, 2, 2], new byte[8]));
        var truncated = Path.Combine(_dir.FullName, "short");
        File.WriteAllBytes(truncated, Idx(0x803, [2, 2, 2], new byte[7]));
        var three = Path.Combine(_dir.FullName, "three");
        File.WriteAllBytes(three, Idx(0x803, [3, 1, 1], new byte[3]));

        ((Action)(() => IdxReader.Read(wrongMagic, labels))).Should().Throw<InvalidDataException>().WithMessage($"*'{wrongMagic}'*0x00000803*0x00000801*");
        ((Action)(() => IdxReader.Read(truncated, labels))).Should().Throw<InvalidDataException>().WithMessage($"*'{truncated}'*8 bytes of data*7*");
        ((Action)(() => IdxReader.Read(three, labels))).Should().Throw<InvalidDataException>().WithMessage("*3 images*2 labels*");
    }

    [Fact]
    public void Real_fashion_mnist_is_read_when_installed()
    {
        // Debian's dataset-fashion-mnist package; .ci/run installs it.
        const string dir = "/usr/share/datasets/fashion-mnist";
        Directory.Exists(dir).Should().BeTrue("`apt-get install dataset-fashion-mnist` provides the real data set (.ci/run installs it)");
        using var test = IdxReader.LoadFashionMnist(dir, train: false);
        test.Count.Should().Be(10_000);
        test.Images.shape.Should().Equal(10_000, 1, 28, 28);
        test.ClassNames.Should().HaveCount(10).And.StartWith("T-shirt/top").And.EndWith("Ankle boot");
        using var counts = test.Labels.bincount(null);
        counts.data<long>().ToArray().Should().AllBeEquivalentTo(1000L);
    }

    [Fact]
    public void FromTensors_validates_and_Take_keeps_the_first_samples()
    {
        using var images = randint(0, 256, [6, 1, 4, 4], dtype: ScalarType.Byte);
        using var labels = tensor(new long[] { 0, 1, 2, 0, 1, 2 });
        using var ds = ImageDataset.FromTensors(images, labels, 3, "toy");
        using var first = ds.Take(4);
        first.Count.Should().Be(4);
        first.Labels.data<long>().ToArray().Should().Equal(0, 1, 2, 0);

        using var floats = zeros(6, 1, 4, 4);
        ((Action)(() => ImageDataset.FromTensors(floats, labels, 3))).Should().Throw<ArgumentException>().Where(e => e.ParamName == "images");
        ((Action)(() => ImageDataset.FromTensors(images, labels, 2))).Should().Throw<ArgumentException>().Where(e => e.ParamName == "labels");
    }
}
