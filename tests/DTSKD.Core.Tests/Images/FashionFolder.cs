using DTSKD.Core.Data;
using SkiaSharp;

namespace DTSKD.Core.Tests.Images;

/// <summary>Real Fashion-MNIST images written as image files, for the image-folder tests.</summary>
internal static class FashionFolder
{
    private static readonly Lazy<(byte[] Images, byte[] Labels)> Train = new(() => Read(true));

    /// <summary>Fashion-MNIST training image <paramref name="index"/> (28 x 28 grayscale) and its label.</summary>
    public static (byte[] Pixels, int Label) Image(int index)
    {
        var (images, labels) = Train.Value;
        return (images.AsSpan(index * 784, 784).ToArray(), labels[index]);
    }

    /// <summary>Writes an 8-bit image (grayscale, or RGB planes) as PNG or JPEG.</summary>
    public static void Write(string path, byte[] pixels, int width, int height, SKEncodedImageFormat format, bool rgb = false, byte alpha = 255, int quality = 100)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var gray = !rgb && alpha == 255;
        var info = new SKImageInfo(width, height, gray ? SKColorType.Gray8 : SKColorType.Rgba8888, gray ? SKAlphaType.Opaque : SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        var plane = width * height;
        for (var i = 0; i < plane; i++)
        {
            var (r, g, b) = rgb ? (pixels[i], pixels[plane + i], pixels[(2 * plane) + i]) : (pixels[i], pixels[i], pixels[i]);
            bitmap.SetPixel(i % width, i / width, new SKColor(r, g, b, alpha));
        }

        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, quality);
        File.WriteAllBytes(path, data.ToArray());
    }

    /// <summary>
    /// A folder of the first <paramref name="train"/> training images and the <paramref name="test"/> after them, as PNG,
    /// in <c>root/train/c&lt;label&gt;/&lt;index&gt;.png</c> and <c>root/test/...</c> (class names sort as the labels do).
    /// </summary>
    public static string Splits(string root, int train, int test)
    {
        for (var i = 0; i < train + test; i++)
        {
            var (pixels, label) = Image(i);
            Write(Path.Combine(root, i < train ? "train" : "test", $"c{label}", $"{i:D5}.png"), pixels, 28, 28, SKEncodedImageFormat.Png);
        }

        return root;
    }

    /// <summary>The same images in the folder's order (by class, then by file name), as an in-memory dataset.</summary>
    public static ImageDataset InFolderOrder(int first, int count)
    {
        var order = Enumerable.Range(first, count).OrderBy(i => Image(i).Label).ThenBy(i => i).ToArray();
        var pixels = order.SelectMany(i => Image(i).Pixels).ToArray();
        var labels = order.Select(i => (long)Image(i).Label).ToArray();
        using var scope = NewDisposeScope();
        return ImageDataset.FromTensors(tensor(pixels, [count, 1, 28, 28], ScalarType.Byte), tensor(labels), 10, "in-memory");
    }

    private static (byte[] Images, byte[] Labels) Read(bool train)
    {
        using var data = IdxReader.LoadFashionMnist(StandardDatasets.DefaultPath(StandardDatasets.FashionMnist), train);
        using var labels = data.Labels.to(ScalarType.Byte);
        return (data.Images.data<byte>().ToArray(), labels.data<byte>().ToArray());
    }
}
