using System.Runtime.InteropServices;
using SkiaSharp;

namespace DTSKD.Core.Deployment;

/// <summary>
/// Turns an image file into the pixels a model sees: decoded with SkiaSharp, turned upright by its EXIF orientation,
/// its shorter side resized to the target size and its centre cropped to a square (torchvision's <c>Resize(size)</c> +
/// <c>CenterCrop(size)</c>), then as uint8 channel planes: RGB, or grayscale by ITU-R 601 luma (PIL's <c>"L"</c>). The
/// image folders, the sample's <c>predict</c> and anything else that must see images as training saw them use this.
/// </summary>
/// <remarks>
/// <para>
/// PNG, JPEG, BMP, GIF (first frame) and WebP decode; grayscale, palette, RGBA, CMYK JPEG and 16-bit PNG become RGB
/// (alpha is dropped, as PIL's <c>convert("RGB")</c> drops it: the stored colours are kept, not blended). An image that is
/// already the target square is copied pixel for pixel; others are resampled once, bilinearly (from mipmaps for reductions
/// beyond 2, and for JPEGs after the codec's own 1/2, 1/4 or 1/8 scaling), so a downscale is filtered as an antialiasing
/// resize filters it.
/// </para>
/// <para>It is thread-safe: the folder sources decode on several threads at once.</para>
/// </remarks>
public static class ImageDecoder
{
    /// <summary>The largest image decoded by default: 100 megapixels (a 10,000 x 10,000 photo); larger ones are refused as possible decompression bombs.</summary>
    public const long DefaultMaxPixels = 100_000_000;

    /// <summary>The extensions an image folder reads, case-insensitively: torchvision's <c>IMG_EXTENSIONS</c>.</summary>
    public static IReadOnlyList<string> Extensions { get; } = [".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"];

    /// <summary>Decodes an image file into <paramref name="destination"/>: <c>channels</c> planes of <c>size</c> x <c>size</c> bytes.</summary>
    /// <param name="path">The image file.</param>
    /// <param name="size">The side of the square to produce.</param>
    /// <param name="channels">3 for RGB, 1 for grayscale.</param>
    /// <param name="destination">At least <c>channels * size * size</c> bytes.</param>
    /// <param name="maxPixels">The largest width x height decoded (<see cref="DefaultMaxPixels"/>).</param>
    /// <exception cref="ImageDecodeException">The file is empty, not an image SkiaSharp reads, truncated, or too large; the message says which.</exception>
    public static void DecodeFile(string path, int size, int channels, Span<byte> destination, long maxPixels = DefaultMaxPixels)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ImageDecodeException(path, $"cannot be read ({ex.Message})", ex);
        }

        Decode(bytes, size, channels, destination, maxPixels, path);
    }

    /// <summary>Decodes an encoded image held in memory (an upload, say); see <see cref="DecodeFile"/>.</summary>
    /// <param name="encoded">The file's bytes.</param>
    /// <param name="size">The side of the square to produce.</param>
    /// <param name="channels">3 for RGB, 1 for grayscale.</param>
    /// <param name="destination">At least <c>channels * size * size</c> bytes.</param>
    /// <param name="maxPixels">The largest width x height decoded.</param>
    /// <param name="name">What to call the image in errors.</param>
    /// <exception cref="ImageDecodeException">The bytes are not an image SkiaSharp reads, are truncated, or are too large.</exception>
    public static void Decode(byte[] encoded, int size, int channels, Span<byte> destination, long maxPixels, string name)
    {
        ArgumentNullException.ThrowIfNull(encoded);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        if (channels is not (1 or 3))
        {
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1 (grayscale) or 3 (RGB).");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(destination.Length, channels * size * size, nameof(destination));
        if (encoded.Length == 0)
        {
            throw new ImageDecodeException(name, "is empty (0 bytes)");
        }

        using var stream = new MemoryStream(encoded, writable: false);
        using var codec = Open(encoded, stream, maxPixels, name);
        var info = DecodedInfo(codec, size);
        using var bitmap = new SKBitmap(info);
        var result = codec.GetPixels(info, bitmap.GetPixels());
        if (result != SKCodecResult.Success)
        {
            throw new ImageDecodeException(name, result == SKCodecResult.IncompleteInput ? "is truncated (its pixel data ends early)" : $"cannot be decoded ({result})");
        }

        // Opaque with the stored colours: alpha is dropped, not blended (as PIL's convert("RGB")).
        if (codec.Info.AlphaType != SKAlphaType.Opaque)
        {
            var pixels = MemoryMarshal.Cast<byte, uint>(bitmap.GetPixelSpan());
            for (var i = 0; i < pixels.Length; i++)
            {
                pixels[i] |= 0xFF000000;
            }
        }

        bitmap.SetImmutable();
        if (codec.EncodedOrigin == SKEncodedOrigin.TopLeft && info.Width == size && info.Height == size)
        {
            ToPlanes(bitmap.GetPixelSpan(), size, channels, destination);
            return;
        }

        using var square = Square(bitmap, codec.EncodedOrigin, size);
        ToPlanes(square.GetPixelSpan(), size, channels, destination);
    }

    /// <summary>
    /// The bytes <see cref="Decode"/> allocates for an image (its decoded pixels, at the codec's reduced size where it has
    /// one, and the square they are resampled to), read from the header alone: a server can weigh a request before it
    /// decodes anything. The header's faults are refused here, as by <see cref="Decode"/>.
    /// </summary>
    /// <param name="encoded">The file's bytes.</param>
    /// <param name="size">The side of the square to produce.</param>
    /// <param name="maxPixels">The largest width x height decoded.</param>
    /// <param name="name">What to call the image in errors.</param>
    /// <exception cref="ImageDecodeException">The bytes are not an image, its header is truncated, it is too large, or it declares more pixel data than the file holds.</exception>
    public static long DecodedBytes(byte[] encoded, int size, long maxPixels, string name)
    {
        ArgumentNullException.ThrowIfNull(encoded);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        if (encoded.Length == 0)
        {
            throw new ImageDecodeException(name, "is empty (0 bytes)");
        }

        using var stream = new MemoryStream(encoded, writable: false);
        using var codec = Open(encoded, stream, maxPixels, name);
        return DecodedInfo(codec, size).BytesSize64 + (4L * size * size);
    }

    /// <summary>The codec of an image whose header is sound: it opens, has pixels, at most <paramref name="maxPixels"/>, and no more pixel data declared than the file can hold.</summary>
    private static SKCodec Open(byte[] encoded, MemoryStream stream, long maxPixels, string name)
    {
        var codec = SKCodec.Create(stream, out var opened);
        if (codec is null)
        {
            throw new ImageDecodeException(name, opened == SKCodecResult.IncompleteInput
                ? "is truncated (it ends inside its header)"
                : "is not an image SkiaSharp can read (PNG, JPEG, BMP, GIF, WebP)");
        }

        try
        {
            var (width, height) = (codec.Info.Width, codec.Info.Height);
            if (width <= 0 || height <= 0)
            {
                throw new ImageDecodeException(name, $"has no pixels ({width}x{height})");
            }

            if ((long)width * height > maxPixels)
            {
                throw new ImageDecodeException(name, $"is {width}x{height} pixels, more than the {maxPixels:N0} allowed (a possible decompression bomb)");
            }

            if (codec.EncodedFormat == SKEncodedImageFormat.Bmp && BmpShortfall(encoded) is { } shortfall)
            {
                throw new ImageDecodeException(name, $"is truncated: its header declares {width}x{height} pixels, {shortfall.Declared:N0} bytes of pixel data, but the file holds {shortfall.Held:N0}");
            }

            return codec;
        }
        catch
        {
            codec.Dispose();
            throw;
        }
    }

    /// <summary>
    /// For a BMP, the pixel bytes its header declares against those the file holds, when it holds fewer: an uncompressed
    /// BMP needs every row; a run-length one at least two bytes per row. The codec would allocate the whole bitmap first
    /// and find the data missing after.
    /// </summary>
    private static (long Declared, long Held)? BmpShortfall(byte[] bmp)
    {
        if (bmp.Length < 34)
        {
            return null;
        }

        var offset = BitConverter.ToUInt32(bmp, 10);
        var headerSize = BitConverter.ToUInt32(bmp, 14);
        if (headerSize < 40)
        {
            return null;
        }

        long width = Math.Abs(BitConverter.ToInt32(bmp, 18));
        long height = Math.Abs((long)BitConverter.ToInt32(bmp, 22));
        var bits = BitConverter.ToUInt16(bmp, 28);
        var compression = BitConverter.ToUInt32(bmp, 30);
        var declared = compression switch
        {
            0 or 3 or 6 => ((width * bits) + 31) / 32 * 4 * height,
            1 or 2 => 2 * height,
            _ => 0,
        };
        var held = Math.Max(0, bmp.Length - (long)offset);
        return declared > held ? (declared, held) : null;
    }

    /// <summary>
    /// What the codec decodes to: the full image, or for a JPEG or WebP much larger than needed, the codec's own reduced
    /// decode (JPEG at 1/2, 1/4 or 1/8 in the DCT, never below the size wanted; WebP by libwebp's scaler to about twice the
    /// size wanted, so the final resample still filters as it does for any image).
    /// </summary>
    private static SKImageInfo DecodedInfo(SKCodec codec, int size)
    {
        var (width, height) = (codec.Info.Width, codec.Info.Height);
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        if (codec.EncodedFormat == SKEncodedImageFormat.Jpeg && Math.Min(width, height) >= 2 * size)
        {
            foreach (var scale in new[] { 0.125f, 0.25f, 0.5f })
            {
                var scaled = codec.GetScaledDimensions(scale);
                if (Math.Min(scaled.Width, scaled.Height) >= size)
                {
                    return info.WithSize(scaled.Width, scaled.Height);
                }
            }
        }

        if (codec.EncodedFormat == SKEncodedImageFormat.Webp && Math.Min(width, height) > 4 * size)
        {
            var scaled = codec.GetScaledDimensions(2f * size / Math.Min(width, height));
            if (Math.Min(scaled.Width, scaled.Height) >= size)
            {
                return info.WithSize(scaled.Width, scaled.Height);
            }
        }

        return info;
    }

    /// <summary>The upright image's centred square, resized to <paramref name="size"/> (the caller disposes it).</summary>
    private static SKBitmap Square(SKBitmap bitmap, SKEncodedOrigin origin, int size)
    {
        // The upright image is width x height, or height x width for the rotated orientations.
        var (width, height) = (bitmap.Width, bitmap.Height);
        var swapped = origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;
        var (uprightW, uprightH) = swapped ? (height, width) : (width, height);
        var side = Math.Min(uprightW, uprightH);
        var (left, top) = ((uprightW - side) / 2f, (uprightH - side) / 2f);

        var target = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(target))
        using (var image = SKImage.FromBitmap(bitmap))
        using (var paint = new SKPaint { BlendMode = SKBlendMode.Src })
        {
            canvas.Scale(size / (float)side);
            canvas.Translate(-left, -top);
            canvas.Concat(Orientation(origin, width, height));

            // Bilinear filtering averages enough source pixels for a reduction of up to 2; a larger one reads from mipmaps.
            var mipmaps = side > 2 * size ? SKMipmapMode.Linear : SKMipmapMode.None;
            canvas.DrawImage(image, 0, 0, new SKSamplingOptions(SKFilterMode.Linear, mipmaps), paint);
        }

        return target;
    }

    /// <summary>The matrix that draws the stored pixels upright (EXIF orientation), for a stored image of <paramref name="width"/> x <paramref name="height"/>.</summary>
    private static SKMatrix Orientation(SKEncodedOrigin origin, int width, int height) => origin switch
    {
        SKEncodedOrigin.TopRight => new SKMatrix(-1, 0, width, 0, 1, 0, 0, 0, 1),
        SKEncodedOrigin.BottomRight => new SKMatrix(-1, 0, width, 0, -1, height, 0, 0, 1),
        SKEncodedOrigin.BottomLeft => new SKMatrix(1, 0, 0, 0, -1, height, 0, 0, 1),
        SKEncodedOrigin.LeftTop => new SKMatrix(0, 1, 0, 1, 0, 0, 0, 0, 1),
        SKEncodedOrigin.RightTop => new SKMatrix(0, -1, height, 1, 0, 0, 0, 0, 1),
        SKEncodedOrigin.RightBottom => new SKMatrix(0, -1, height, -1, 0, width, 0, 0, 1),
        SKEncodedOrigin.LeftBottom => new SKMatrix(0, 1, 0, -1, 0, width, 0, 0, 1),
        _ => SKMatrix.Identity,
    };

    /// <summary>RGBA pixels to channel planes: R, G, B, or one plane of ITU-R 601 luma.</summary>
    private static void ToPlanes(ReadOnlySpan<byte> rgba, int size, int channels, Span<byte> destination)
    {
        var plane = size * size;
        var pixels = MemoryMarshal.Cast<byte, uint>(rgba)[..plane];
        if (channels == 1)
        {
            for (var i = 0; i < plane; i++)
            {
                var v = pixels[i];
                destination[i] = (byte)((((v & 0xFF) * 19595) + (((v >> 8) & 0xFF) * 38470) + (((v >> 16) & 0xFF) * 7471) + 0x8000) >> 16);
            }

            return;
        }

        var red = destination[..plane];
        var green = destination.Slice(plane, plane);
        var blue = destination.Slice(2 * plane, plane);
        for (var i = 0; i < plane; i++)
        {
            var v = pixels[i];
            red[i] = (byte)v;
            green[i] = (byte)(v >> 8);
            blue[i] = (byte)(v >> 16);
        }
    }
}
