namespace DTSKD.Core.Deployment;

/// <summary>
/// What an exported file promises its consumer: the names of its input and outputs, and the metadata keys that carry the
/// preprocessing. An image is decoded with its shorter side resized to <see cref="DecodeSizeKey"/> and its centre
/// cropped to that square (EXIF orientation applied, alpha dropped, gray as ITU-R 601 luma), then centre-cropped to
/// <see cref="ImageSizeKey"/> when that is smaller; the input is float32 <c>[batch, channels, size, size]</c>, RGB (or
/// gray) channel order, each pixel <c>(value / 255 − mean[c]) / std[c]</c>. The outputs are float32 logits
/// <c>[batch, classes]</c> (softmax gives probabilities).
/// </summary>
public static class OnnxContract
{
    /// <summary>The opset the files are written in: 17, the newest that Debian 12's and Ubuntu 22.04's ONNX checker (onnx 1.12)
    /// knows, and older than every ONNX Runtime and ML.NET release DTSKD.Core supports; every operator used has had its
    /// present form since opset 13 or earlier.</summary>
    public const int Opset = 17;

    /// <summary>The ONNX IR version of opset 17.</summary>
    public const int IrVersion = 8;

    /// <summary>The input's name.</summary>
    public const string InputName = "input";

    /// <summary>The backbone head's output (the plain classifier's logits).</summary>
    public const string LogitsName = "logits";

    /// <summary>The symbolic batch dimension of the input and outputs.</summary>
    public const string BatchDimension = "batch";

    /// <summary>Metadata: the side of the square images, in pixels.</summary>
    public const string ImageSizeKey = "dtskd.image_size";

    /// <summary>Metadata: the side images are decoded to before the centre crop of <see cref="ImageSizeKey"/> (equal to it when there is no crop).</summary>
    public const string DecodeSizeKey = "dtskd.decode_size";

    /// <summary>Metadata: 3 (RGB) or 1 (gray).</summary>
    public const string ChannelsKey = "dtskd.channels";

    /// <summary>Metadata: the per-channel means of pixels scaled to [0, 1], comma-separated.</summary>
    public const string MeanKey = "dtskd.mean";

    /// <summary>Metadata: the per-channel standard deviations, comma-separated.</summary>
    public const string StdKey = "dtskd.std";

    /// <summary>Metadata: the class names in index order, as a JSON array of strings (absent when unknown).</summary>
    public const string ClassNamesKey = "dtskd.class_names";

    /// <summary>Metadata: the output names, comma-separated: <see cref="LogitsName"/>, then <c>branch1_logits</c>, ... for early exits.</summary>
    public const string OutputsKey = "dtskd.outputs";

    /// <summary>Metadata: the network's name (for example resnet18_dtskd).</summary>
    public const string ModelKey = "dtskd.model";

    /// <summary>Metadata: "true" when BatchNorm was folded into the convolutions.</summary>
    public const string FoldedKey = "dtskd.batchnorm_folded";

    /// <summary>The largest <see cref="DecodeSizeKey"/> an export may carry and a consumer accepts: 4096 pixels.</summary>
    /// <remarks>Each image is decoded to this square before the crop: 4096 pixels of RGB are 48 MiB per image in flight.</remarks>
    public const int MaxDecodeSize = 4096;

    /// <summary>
    /// The largest decode size for a model of <paramref name="imageSize"/> pixels: eight times the image, at most
    /// <see cref="MaxDecodeSize"/> (a crop of an eighth of the decoded side is already far past any recipe's; 256 for 224 is 1.14).
    /// </summary>
    /// <param name="imageSize">The side of the model's input.</param>
    public static int LargestDecodeSize(int imageSize) => (int)Math.Min(MaxDecodeSize, 8L * imageSize);

    /// <summary>The name of branch k's output (1-based).</summary>
    public static string BranchName(int branch) => $"branch{branch}_logits";
}
