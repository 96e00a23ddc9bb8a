using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using DTSKD.Core.Data;

namespace DTSKD.Core.Tests;

public sealed class Cifar100DownloadTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-download-");

    public void Dispose() => _dir.Delete(recursive: true);

    internal static byte[] CifarRecords(int count, int seed)
    {
        var rng = new Random(seed);
        var bytes = new byte[count * CifarReader.Cifar100RecordSize];
        rng.NextBytes(bytes);
        for (var r = 0; r < count; r++)
        {
            var label = (byte)(r % 100);
            bytes[r * CifarReader.Cifar100RecordSize] = (byte)(label / 5);
            bytes[(r * CifarReader.Cifar100RecordSize) + 1] = label;
        }

        return bytes;
    }

    private (string Archive, long Size, string Md5) MakeArchive(bool truncate)
    {
        var source = Directory.CreateDirectory(Path.Combine(_dir.FullName, "src", Cifar100Download.FolderName));
        File.WriteAllBytes(Path.Combine(source.FullName, "train.bin"), CifarRecords(30, 3));
        File.WriteAllBytes(Path.Combine(source.FullName, "test.bin"), CifarRecords(10, 4));
        File.WriteAllLines(Path.Combine(source.FullName, "fine_label_names.txt"), Enumerable.Range(0, 100).Select(i => $"class{i}"));
        var archive = Path.Combine(_dir.FullName, "served.tar.gz");
        using (var file = File.Create(archive))
        using (var gzip = new GZipStream(file, CompressionLevel.Fastest))
        {
            TarFile.CreateFromDirectory(source.FullName, gzip, includeBaseDirectory: true);
        }

        if (truncate)
        {
            File.WriteAllBytes(archive, File.ReadAllBytes(archive)[..^4000]);
        }

        var bytes = File.ReadAllBytes(archive);
#pragma warning disable CA5351 // The format's published checksum is an MD5.
        return (archive, bytes.Length, Convert.ToHexStringLower(MD5.HashData(bytes)));
#pragma warning restore CA5351
    }

    [Fact]
    public async Task Download_checks_size_and_md5_extracts_and_then_reuses_the_data()
    {
        var (archive, size, md5) = MakeArchive(truncate: false);
        var data = Path.Combine(_dir.FullName, "data");
        var reports = new List<(long, long)>();

        var folder = await Cifar100Download.EnsureAsync(data, new Sync<(long, long)>(reports.Add), new Uri(archive), size, md5);

        folder.Should().Be(Path.Combine(data, Cifar100Download.FolderName));
        using (var train = CifarReader.LoadCifar100(folder, train: true))
        {
            train.Count.Should().Be(30);
            train.ClassNames.Should().HaveCount(100).And.StartWith("class0");
        }

        reports.Should().NotBeEmpty().And.EndWith((size, size));
        Directory.GetFileSystemEntries(data).Select(Path.GetFileName).Should().BeEquivalentTo(Cifar100Download.FolderName, Cifar100Download.ArchiveName);

        File.Delete(archive);
        (await Cifar100Download.EnsureAsync(data, null, new Uri(archive), size, md5)).Should().Be(folder, "existing data is used as is");
    }

    [Fact]
    public async Task A_checksum_mismatch_is_a_clear_error_and_leaves_nothing_behind()
    {
        var (archive, size, _) = MakeArchive(truncate: false);
        var data = Path.Combine(_dir.FullName, "data");

        var act = () => Cifar100Download.EnsureAsync(data, null, new Uri(archive), size, "0123456789abcdef0123456789abcdef");

        (await act.Should().ThrowAsync<InvalidDataException>()).WithMessage("*MD5*expected*0123456789abcdef0123456789abcdef*");
        Directory.Exists(data).Should().BeFalse("a failed first download leaves no empty data folder");
    }

    [Fact]
    public async Task A_truncated_archive_is_a_clear_error_and_leaves_nothing_behind()
    {
        var (archive, size, md5) = MakeArchive(truncate: true);
        var data = Path.Combine(_dir.FullName, "data");
        Directory.CreateDirectory(data);

        var act = () => Cifar100Download.EnsureAsync(data, null, new Uri(archive), size, md5);

        (await act.Should().ThrowAsync<InvalidDataException>()).WithMessage("*not a complete tar.gz*");
        Directory.GetFileSystemEntries(data).Should().BeEmpty("a folder that was there stays, and holds nothing of the attempt");
    }

    [Fact]
    public async Task The_catalog_loads_each_data_set_with_its_preprocessing_limits_and_class_names()
    {
        var (archive, size, md5) = MakeArchive(truncate: false);
        var data = Path.Combine(_dir.FullName, "catalog");
        await Cifar100Download.EnsureAsync(data, null, new Uri(archive), size, md5);

        using var cifar = await StandardDatasets.LoadAsync(StandardDatasets.Cifar100, data, trainLimit: 12, testLimit: 5, download: false);

        cifar.Train.Count.Should().Be(12);
        cifar.Test.Count.Should().Be(5);
        cifar.Preprocessing.Should().BeSameAs(PadCropFlip.Cifar);
        cifar.Train.ClassNames![7].Should().Be("class7");
        var missing = () => StandardDatasets.LoadAsync(StandardDatasets.FashionMnist, Path.Combine(_dir.FullName, "none"));
        (await missing.Should().ThrowAsync<FileNotFoundException>()).WithMessage("Fashion-MNIST is not in*apt-get install dataset-fashion-mnist*");
        var unknown = () => StandardDatasets.LoadAsync("imagenet");
        (await unknown.Should().ThrowAsync<ArgumentException>()).WithMessage("Unknown data set 'imagenet'. Known data sets: cifar100, cifar10, fashion-mnist.*");
        StandardDatasets.DefaultPath(StandardDatasets.FashionMnist).Should().Be("/usr/share/datasets/fashion-mnist");
    }

    private sealed class Sync<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
