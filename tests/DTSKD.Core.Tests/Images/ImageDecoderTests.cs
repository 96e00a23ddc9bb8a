using DTSKD.Core.Images;
using SkiaSharp;
using DTSKD.Core.Deployment;

namespace DTSKD.Core.Tests.Images;

public sealed class ImageDecoderTests : IDisposable
{
    private static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "TestData", "images");
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-decode-");

    public void Dispose() => _dir.Delete(recursive: true);

    private static byte[] Decode(string path, int size, int channels)
    {
        var pixels = new byte[channels * size * size];
        ImageDecoder.DecodeFile(path, size, channels, pixels);
        return pixels;
    }

    /// <summary>A PIL reference written by eng/make-image-fixtures.py: width, height, then RGB rows.</summary>
    private static (int Width, int Height, byte[] Rgb) Reference(string name)
    {
        var bytes = File.ReadAllBytes(Path.Combine(Fixtures, name + ".rgb"));
        return (bytes[0], bytes[1], bytes[2..]);
    }

    private static int MaxDifference(byte[] planes, byte[] interleaved, int width, int x0, int y0, int size)
    {
        var worst = 0;
        for (var c = 0; c < 3; c++)
        {
            for (var y = 0; y < size; y++)
            {
                for (var x = 0; x < size; x++)
                {
                    worst = Math.Max(worst, Math.Abs(planes[(c * size * size) + (y * size) + x] - interleaved[((((y0 + y) * width) + x0 + x) * 3) + c]));
                }
            }
        }

        return worst;
    }

    [Fact]
    public void A_png_of_the_target_size_gives_back_its_exact_pixels_in_gray_and_in_rgb()
    {
        var (pixels, _) = FashionFolder.Image(7);
        var png = Path.Combine(_dir.FullName, "seven.PNG");
        FashionFolder.Write(png, pixels, 28, 28, SKEncodedImageFormat.Png);

        Decode(png, 28, 1).Should().Equal(pixels, "the IDX source, byte for byte");
        Decode(png, 28, 3).Should().Equal([.. pixels, .. pixels, .. pixels], "a grayscale image is three equal planes in RGB");
    }

    [Fact]
    public void Alpha_is_dropped_keeping_the_stored_colours_as_pil_does()
    {
        var (pixels, _) = FashionFolder.Image(3);
        var rgb = pixels.Concat(pixels.Select(p => (byte)(255 - p))).Concat(pixels.Select(p => (byte)(p / 2))).ToArray();
        var png = Path.Combine(_dir.FullName, "rgba.png");
        FashionFolder.Write(png, rgb, 28, 28, SKEncodedImageFormat.Png, rgb: true, alpha: 40);

        Decode(png, 28, 3).Should().Equal(rgb, "not blended with any background");
    }

    [Theory]
    [InlineData("palette.png", 0)]
    [InlineData("cmyk.jpg", 6)]
    [InlineData("rotated.jpg", 4)]
    public void Palette_cmyk_and_exif_rotated_images_decode_as_pil_sees_them(string name, int tolerance)
    {
        var (width, height, rgb) = Reference(name);
        var side = Math.Min(width, height);
        var decoded = Decode(Path.Combine(Fixtures, name), side, 3);

        // The centred square of the upright image (the rotated one is 14 wide and 28 tall once upright).
        MaxDifference(decoded, rgb, width, (width - side) / 2, (height - side) / 2, side).Should().BeLessThanOrEqualTo(tolerance);
    }

    [Fact]
    public void A_16_bit_png_becomes_its_8_bit_values()
    {
        var decoded = Decode(Path.Combine(Fixtures, "gray16.png"), 28, 1);

        // The fixture is Fashion-MNIST test image 0 times 257.
        using var data = DTSKD.Core.Data.IdxReader.LoadFashionMnist(DTSKD.Core.Data.StandardDatasets.DefaultPath(DTSKD.Core.Data.StandardDatasets.FashionMnist), train: false);
        decoded.Should().Equal(data.Images.narrow(0, 0, 1).data<byte>().ToArray());
    }

    [Fact]
    public void A_larger_image_is_resized_on_its_shorter_side_and_centre_cropped()
    {
        // 60 wide, 30 tall: left third black, middle third white, right third black; the centre square is the white band's surroundings.
        var pixels = Enumerable.Range(0, 60 * 30).Select(i => (byte)(i % 60 is >= 20 and < 40 ? 255 : 0)).ToArray();
        var png = Path.Combine(_dir.FullName, "wide.png");
        FashionFolder.Write(png, pixels, 60, 30, SKEncodedImageFormat.Png);

        var decoded = Decode(png, 15, 1);

        // The centre 30x30 (columns 15..44) halved: columns 0..1 black, 3..11 white, 13..14 black.
        for (var y = 0; y < 15; y++)
        {
            decoded[(y * 15) + 0].Should().Be(0);
            decoded[(y * 15) + 7].Should().Be(255);
            decoded[(y * 15) + 14].Should().Be(0);
        }
    }

    [Fact]
    public void Bad_files_are_named_with_what_is_wrong()
    {
        var empty = Path.Combine(_dir.FullName, "empty.png");
        File.WriteAllBytes(empty, []);
        var text = Path.Combine(_dir.FullName, "text.jpg");
        File.WriteAllText(text, "no pixels here");
        var (pixels, _) = FashionFolder.Image(1);
        var jpeg = Path.Combine(_dir.FullName, "whole.jpg");
        FashionFolder.Write(jpeg, pixels, 28, 28, SKEncodedImageFormat.Jpeg, quality: 90);
        var truncated = Path.Combine(_dir.FullName, "truncated.jpg");
        File.WriteAllBytes(truncated, File.ReadAllBytes(jpeg)[..^200]);
        var big = Path.Combine(_dir.FullName, "big.png");
        FashionFolder.Write(big, new byte[200 * 100], 200, 100, SKEncodedImageFormat.Png);

        foreach (var (path, message, maxPixels) in new[]
                 {
                     (empty, $"'{empty}' is empty (0 bytes).", ImageDecoder.DefaultMaxPixels),
                     (text, $"'{text}' is not an image SkiaSharp can read (PNG, JPEG, BMP, GIF, WebP).", ImageDecoder.DefaultMaxPixels),
                     (truncated, $"'{truncated}' is truncated (its pixel data ends early).", ImageDecoder.DefaultMaxPixels),
                     (big, $"'{big}' is 200x100 pixels, more than the 10,000 allowed (a possible decompression bomb).", 10_000L),
                     (Path.Combine(_dir.FullName, "missing.png"), $"'{Path.Combine(_dir.FullName, "missing.png")}' cannot be read (", ImageDecoder.DefaultMaxPixels),
                 })
        {
            var act = () => ImageDecoder.DecodeFile(path, 28, 3, new byte[3 * 28 * 28], maxPixels);
            act.Should().Throw<ImageDecodeException>().Which.Message.Should().StartWith(message);
        }
    }

    [Fact]
    public void A_large_webp_is_decoded_reduced_by_its_codec_to_what_a_full_decode_gives_and_weighed_by_that()
    {
        // 2000 x 2000 of smooth gradients, lossless: a full decode takes 16 MB; the codec's reduction about 100 times less.
        const int Side = 2000;
        using var bitmap = new SKBitmap(new SKImageInfo(Side, Side, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var pixels = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(bitmap.GetPixelSpan());
        for (var y = 0; y < Side; y++)
        {
            for (var x = 0; x < Side; x++)
            {
                pixels[(y * Side) + x] = 0xFF000000u | ((uint)(y * 255 / Side) << 8) | (uint)(x * 255 / Side);
            }
        }

        using var image = SKImage.FromBitmap(bitmap);
        using var encoded = image.Encode(SKEncodedImageFormat.Webp, 100);
        var webp = encoded.ToArray();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);

        var fromWebp = new byte[3 * 32 * 32];
        ImageDecoder.Decode(webp, 32, 3, fromWebp, ImageDecoder.DefaultMaxPixels, "gradient.webp");
        var fromPng = new byte[3 * 32 * 32];
        ImageDecoder.Decode(png.ToArray(), 32, 3, fromPng, ImageDecoder.DefaultMaxPixels, "gradient.png");

        fromWebp.Zip(fromPng).Max(p => Math.Abs(p.First - p.Second)).Should().BeLessThanOrEqualTo(3, "the reduced decode is filtered, not subsampled");
        ImageDecoder.DecodedBytes(webp, 32, ImageDecoder.DefaultMaxPixels, "gradient.webp").Should().BeLessThan(4L * 64 * 64 * 2, "about twice the size wanted, not 2000 pixels");
        ImageDecoder.DecodedBytes(png.ToArray(), 32, ImageDecoder.DefaultMaxPixels, "gradient.png").Should().Be((4L * Side * Side) + (4L * 32 * 32), "a PNG has no reduced decode");
    }

    [Fact]
    public void A_bmp_declaring_more_pixel_data_than_it_holds_is_refused_before_its_bitmap_is_allocated()
    {
        var bmp = new byte[154];
        "BM"u8.CopyTo(bmp);
        BitConverter.TryWriteBytes(bmp.AsSpan(10), 54u);
        BitConverter.TryWriteBytes(bmp.AsSpan(14), 40u);
        BitConverter.TryWriteBytes(bmp.AsSpan(18), 9999);
        BitConverter.TryWriteBytes(bmp.AsSpan(22), 9999);
        BitConverter.TryWriteBytes(bmp.AsSpan(26), (ushort)1);
        BitConverter.TryWriteBytes(bmp.AsSpan(28), (ushort)24);
        var act = () => ImageDecoder.DecodedBytes(bmp, 32, ImageDecoder.DefaultMaxPixels, "bomb.bmp");
        act.Should().Throw<ImageDecodeException>().WithMessage("'bomb.bmp' is truncated: its header declares 9999x9999 pixels, 299,970,000 bytes of pixel data, but the file holds 100.");
        var decode = () => ImageDecoder.Decode(bmp, 32, 3, new byte[3 * 32 * 32], ImageDecoder.DefaultMaxPixels, "bomb.bmp");
        decode.Should().Throw<ImageDecodeException>().WithMessage("*is truncated: its header declares*");
    }
}
