using System.Globalization;
using System.Text.Json;

namespace DTSKD.Core.Deployment;

/// <summary>
/// The preprocessing an exported file promises (its <c>dtskd.*</c> metadata, docs/deploy.md), parsed and checked once,
/// against the model's own input and output shapes, before anything is served: a file whose metadata cannot be what its
/// graph takes is refused with one line naming the key, instead of a server whose every request fails.
/// </summary>
/// <param name="ImageSize">The side of the square the model sees.</param>
/// <param name="DecodeSize">The side images are decoded to before the centre crop.</param>
/// <param name="Channels">3 (RGB) or 1 (gray).</param>
/// <param name="Mean">The per-channel means of pixels scaled to [0, 1].</param>
/// <param name="Std">The per-channel standard deviations, each positive.</param>
/// <param name="ClassCount">The number of classes the logits have.</param>
/// <param name="ClassNames">The classes' names in index order (<c>class i</c> when the file has none).</param>
/// <param name="Model">The network's name.</param>
public sealed record ModelContract(int ImageSize, int DecodeSize, int Channels, double[] Mean, double[] Std, int ClassCount, string[] ClassNames, string Model)
{
    private const string ImageSizeKey = OnnxContract.ImageSizeKey;
    private const string DecodeSizeKey = OnnxContract.DecodeSizeKey;
    private const string ChannelsKey = OnnxContract.ChannelsKey;
    private const string MeanKey = OnnxContract.MeanKey;
    private const string StdKey = OnnxContract.StdKey;
    private const string ClassNamesKey = OnnxContract.ClassNamesKey;
    private const string ModelKey = OnnxContract.ModelKey;

    /// <summary>Reads and checks the contract.</summary>
    /// <param name="path">The file, for messages.</param>
    /// <param name="metadata">The model's custom metadata.</param>
    /// <param name="input">The shape of the input named <c>input</c> (-1 for a symbolic dimension), or null when the model has none.</param>
    /// <param name="logits">The shape of the output named <c>logits</c>, or null when the model has none.</param>
    /// <exception cref="InvalidDataException">One line naming the key or the shape that is wrong and what was expected.</exception>
    public static ModelContract Read(string path, IReadOnlyDictionary<string, string> metadata, int[]? input, int[]? logits)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        InvalidDataException Bad(string what) => new($"'{path}': {what}");
        string Key(string key) => metadata.TryGetValue(key, out var value)
            ? value
            : throw Bad($"no '{key}' metadata: export it with DTSKD.Core.Onnx (the sample's export --format onnx), which records the preprocessing.");
        int Whole(string key, string what) => int.TryParse(Key(key), NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0
            ? value
            : throw Bad($"metadata {key} is '{Key(key)}'; expected {what}, a whole number from 1.");

        if (input is not { Length: 4 })
        {
            throw Bad($"the model has no input '{OnnxContract.InputName}' of shape [batch, channels, size, size].");
        }

        if (logits is not { Length: 2 } || logits[1] < 1)
        {
            throw Bad($"the model has no output '{OnnxContract.LogitsName}' of shape [batch, classes] with a fixed number of classes.");
        }

        var imageSize = Whole(ImageSizeKey, "the side of the model's input in pixels");
        if ((input[2] > 0 && input[2] != imageSize) || (input[3] > 0 && input[3] != imageSize))
        {
            throw Bad($"metadata {ImageSizeKey} is {imageSize}, but the model's input is {input[2]}x{input[3]} pixels.");
        }

        var channels = Whole(ChannelsKey, "1 (gray) or 3 (RGB)");
        if (channels is not (1 or 3))
        {
            throw Bad($"metadata {ChannelsKey} is {channels}; expected 1 (gray) or 3 (RGB).");
        }

        if (input[1] > 0 && input[1] != channels)
        {
            throw Bad($"metadata {ChannelsKey} is {channels}, but the model's input has {input[1]} channels.");
        }

        var decodeSize = Whole(DecodeSizeKey, "the side images are decoded to");
        var largest = OnnxContract.LargestDecodeSize(imageSize);
        if (decodeSize < imageSize || decodeSize > largest)
        {
            throw Bad($"metadata {DecodeSizeKey} is {decodeSize}; expected from {ImageSizeKey} ({imageSize}) to {largest} pixels.");
        }

        var mean = PerChannel(MeanKey, "a finite mean", _ => true);
        var std = PerChannel(StdKey, "a positive standard deviation", v => v > 0);
        var classCount = logits[1];
        var names = metadata.TryGetValue(ClassNamesKey, out var json) ? ClassNamesOf(json) : [.. Enumerable.Range(0, classCount).Select(i => $"class {i}")];
        if (names.Length != classCount)
        {
            throw Bad($"metadata {ClassNamesKey} names {names.Length} classes, but the model's logits have {classCount}.");
        }

        var model = metadata.TryGetValue(ModelKey, out var name) && !string.IsNullOrWhiteSpace(name) ? name : "model";
        return new ModelContract(imageSize, decodeSize, channels, mean, std, classCount, names, model);

        double[] PerChannel(string key, string what, Func<double, bool> valid)
        {
            var text = Key(key);
            var values = new List<double>();
            foreach (var part in text.Split(','))
            {
                if (!double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !double.IsFinite(value) || !valid(value))
                {
                    throw Bad($"metadata {key} is '{text}'; expected {channels} comma-separated numbers, each {what}.");
                }

                values.Add(value);
            }

            return values.Count == channels
                ? [.. values]
                : throw Bad($"metadata {key} has {values.Count} value{(values.Count == 1 ? "" : "s")} ('{text}'); expected one per channel ({channels}).");
        }

        string[] ClassNamesOf(string text)
        {
            try
            {
                var names = JsonSerializer.Deserialize<string?[]>(text);
                return names is not null && names.All(n => n is not null)
                    ? [.. names.Select(n => n!)]
                    : throw Bad($"metadata {ClassNamesKey} is not a JSON array of strings.");
            }
            catch (JsonException)
            {
                throw Bad($"metadata {ClassNamesKey} is not a JSON array of strings: '{(text.Length > 60 ? text[..60] + "..." : text)}'.");
            }
        }
    }
}
