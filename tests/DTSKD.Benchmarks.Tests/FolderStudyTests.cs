using System.IO.Compression;
using SkiaSharp;

namespace DTSKD.Benchmarks.Tests;

/// <summary>The README's "does DTSKD pay on your images?" command, on a folder of real images written as PNG files.</summary>
public sealed class FolderStudyTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-folder-study-");

    public void Dispose() => _dir.Delete(recursive: true);

    /// <summary>Fashion-MNIST images <paramref name="first"/>.. as <c>root/split/c&lt;label&gt;/i.png</c>.</summary>
    private static void WritePngs(string root, string split, byte[] images, byte[] labels, int first, int count)
    {
        for (var i = first; i < first + count; i++)
        {
            var folder = Directory.CreateDirectory(Path.Combine(root, split, $"c{labels[i]}")).FullName;
            var info = new SKImageInfo(28, 28, SKColorType.Gray8, SKAlphaType.Opaque);
            using var bitmap = new SKBitmap(info);
            images.AsSpan(i * 784, 784).CopyTo(bitmap.GetPixelSpan());
            using var image = SKImage.FromBitmap(bitmap);
            using var png = image.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(Path.Combine(folder, $"{i:D5}.png"), png.ToArray());
        }
    }

    /// <summary>The payload of a gzipped IDX file (its header skipped), read here rather than through the library under test.</summary>
    private static byte[] Idx(string name, int header)
    {
        using var gzip = new GZipStream(File.OpenRead(Path.Combine("/usr/share/datasets/fashion-mnist", name)), CompressionMode.Decompress);
        using var bytes = new MemoryStream();
        gzip.CopyTo(bytes);
        return bytes.ToArray()[header..];
    }

    [Fact]
    public async Task A_folder_of_images_is_compared_with_cross_entropy_per_seed_with_a_verdict()
    {
        var (images, classes) = (Idx("train-images-idx3-ubyte.gz", 16), Idx("train-labels-idx1-ubyte.gz", 8));
        var photos = Path.Combine(_dir.FullName, "photos");
        WritePngs(photos, "train", images, classes, 0, 96);
        WritePngs(photos, "val", images, classes, 96, 48);

        var report = Path.Combine(_dir.FullName, "study.md");
        var (code, output) = await BenchProcess.Run(
        [
            "ablation", "--device", "cpu", "--data-type", "folder", "--data-path", photos, "--image-size", "28", "--channels", "1",
            "--image-cache", Path.Combine(_dir.FullName, "cache"), "--epochs", "2", "--batch-size", "32", "--base-width", "16",
            "--neck-width", "16", "--rows", "ce,dtskd[t2=off]", "--seeds", "1,2", "--output", report,
        ]);

        code.Should().Be(0, output);
        var text = File.ReadAllText(report);
        text.Should().Contain($"the image folder '{photos}' (96 training, 48 test images) at 28 pixels, 1 channel,", "the report names the folder and its split");
        text.Should().Contain("| `ce` |").And.Contain("| `dtskd[t2=off]` |");
        text.Should().MatchRegex(@"\| `ce` \|[^\n]*\d+\.\d\d ± \d+\.\d\d[^\n]*\d+\.\d\d / \d+\.\d\d", "mean ± spread and the per-seed values");
        text.Should().MatchRegex(@"\nVerdict: [^\n]*cross-entropy[^\n]*`dtskd\[t2=off\]`[^\n]*\d+\.\d\d\)?\. Per seed, `dtskd\[t2=off\]` is ahead in \d of 2\.\r?\n", "one verdict line against the seed spread and per seed");
        File.Exists(Path.Combine(_dir.FullName, "study", "ablation.csv")).Should().BeTrue();
        File.Exists(Path.Combine(_dir.FullName, "study", "ablation-backbone.png")).Should().BeTrue();
    }
}
