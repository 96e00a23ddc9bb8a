using System.Globalization;

namespace DTSKD.Samples.Serve;

/// <summary>The service's settings: the <c>Model</c> section of appsettings.json, or <c>Model__Path=...</c> in the environment.</summary>
public sealed class ServeOptions
{
    /// <summary>What a multipart form may add around its image (boundaries, headers, other small fields).</summary>
    public const long FormOverheadBytes = 64 * 1024;

    /// <summary>The largest <see cref="MaxImageBytes"/> accepted: 1 GiB (Kestrel's body limit follows the setting, so it must stay far from overflow).</summary>
    public const long MaxImageBytesLimit = 1L << 30;

    /// <summary>The .onnx file exported by DTSKD.Core.Onnx (the CIFAR sample's <c>export --format onnx</c>).</summary>
    public string Path { get; set; } = "";

    /// <summary>The largest image accepted, in bytes; Kestrel's request body limit is set from it.</summary>
    public long MaxImageBytes { get; set; } = 10 * 1024 * 1024;

    /// <summary>How many classes an answer lists, unless the request asks (<c>?top=k</c>).</summary>
    public int Top { get; set; } = 5;

    /// <summary>The bytes that the images being decoded at once may take, together (their decoded pixels); 1 GiB by default.</summary>
    public long DecodeBudgetBytes { get; set; } = 1L << 30;

    /// <summary>How many requests may wait for the decode budget; one more is answered 503 with Retry-After.</summary>
    public int QueueLimit { get; set; } = 64;

    /// <summary>Kestrel's request body limit: the image and a form's envelope.</summary>
    public long MaxRequestBodyBytes => MaxImageBytes + FormOverheadBytes;

    /// <summary>Reads and checks the <c>Model</c> section; one line naming the setting when a value is not what it must be.</summary>
    /// <param name="section">The configuration's <c>Model</c> section.</param>
    public static (ServeOptions? Options, string? Error) Read(IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(section);
        var options = new ServeOptions { Path = section["Path"] ?? "" };
        string? error = null;
        long Whole(string key, long fallback, long min, long max, string what)
        {
            var text = section[key];
            if (text is null || error is not null)
            {
                return fallback;
            }

            if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max)
            {
                return value;
            }

            error = $"setting Model:{key} is '{text}'; expected {what}, a whole number from {min.ToString("N0", CultureInfo.InvariantCulture)} to {max.ToString("N0", CultureInfo.InvariantCulture)}.";
            return fallback;
        }

        options.MaxImageBytes = Whole(nameof(MaxImageBytes), options.MaxImageBytes, 1, MaxImageBytesLimit, "the largest image in bytes");
        options.Top = (int)Whole(nameof(Top), options.Top, 1, 10_000, "how many classes an answer lists");
        options.DecodeBudgetBytes = Whole(nameof(DecodeBudgetBytes), options.DecodeBudgetBytes, 1L << 20, 1L << 40, "the bytes the images decoded at once may take");
        options.QueueLimit = (int)Whole(nameof(QueueLimit), options.QueueLimit, 0, 100_000, "how many requests may wait to be decoded");
        return error is null ? (options, null) : (null, error);
    }
}
