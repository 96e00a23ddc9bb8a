using System.Globalization;
using System.Text.Json;
using DTSKD.Core.Deployment;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace DTSKD.Samples.Inference;

/// <summary>One class and its probability.</summary>
/// <param name="Label">The class's name (or "class i" when the model carries no names).</param>
/// <param name="Index">The class's index.</param>
/// <param name="Probability">Softmax of the logits, in [0, 1].</param>
public sealed record Prediction(string Label, int Index, double Probability);

/// <summary>
/// An exported DTSKD.Core classifier on ONNX Runtime: it reads the preprocessing contract from the file's metadata
/// (docs/deploy.md), prepares images as training did, and ranks the classes. Thread-safe: one instance serves every request.
/// </summary>
public sealed class OnnxClassifier : IDisposable
{
    private readonly InferenceSession _session;
    private readonly float[] _scale;
    private readonly float[] _shift;

    /// <summary>Loads a file written by DTSKD.Core.Onnx (the sample's <c>export --format onnx</c>).</summary>
    /// <exception cref="InvalidDataException">The file is not an ONNX model, or its preprocessing metadata is missing or does not fit its shapes (<see cref="ModelContract"/>); one line.</exception>
    public OnnxClassifier(string path)
    {
        try
        {
            _session = new InferenceSession(path);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new InvalidDataException($"'{path}' is not an ONNX model ONNX Runtime can load: {ex.Message.Split('\n')[0]}", ex);
        }

        ModelContract contract;
        try
        {
            contract = ModelContract.Read(path, _session.ModelMetadata.CustomMetadataMap, Shape(_session.InputMetadata, OnnxContract.InputName), Shape(_session.OutputMetadata, OnnxContract.LogitsName));
        }
        catch
        {
            _session.Dispose();
            throw;
        }

        (ImageSize, DecodeSize, Channels, ClassCount, ClassNames, Model) = (contract.ImageSize, contract.DecodeSize, contract.Channels, contract.ClassCount, contract.ClassNames, contract.Model);
        var (mean, std) = (contract.Mean, contract.Std);

        // (v / 255 - mean) / std as one multiply-add per channel.
        _scale = [.. std.Select(s => (float)(1 / (255 * s)))];
        _shift = [.. mean.Zip(std).Select(p => (float)(-p.First / p.Second))];
    }

    /// <summary>The side of the square the model sees.</summary>
    public int ImageSize { get; }

    /// <summary>The side images are decoded to before the centre crop.</summary>
    public int DecodeSize { get; }

    /// <summary>3 (RGB) or 1 (gray).</summary>
    public int Channels { get; }

    /// <summary>The number of classes.</summary>
    public int ClassCount { get; }

    /// <summary>The classes' names, in index order.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>The network's name, from the metadata.</summary>
    public string Model { get; }

    /// <summary>The bytes classifying one image will allocate (decoded pixels, planes, the model's input), from its header alone.</summary>
    /// <param name="bytes">The encoded image.</param>
    /// <param name="name">What to call it in errors.</param>
    /// <exception cref="ImageDecodeException">Its header is not an image's, is truncated, or declares too many pixels or more pixel data than it holds.</exception>
    public long DecodedBytes(byte[] bytes, string name) =>
        ImageDecoder.DecodedBytes(bytes, DecodeSize, ImageDecoder.DefaultMaxPixels, name) + ((long)Channels * DecodeSize * DecodeSize) + (4L * Channels * ImageSize * ImageSize);

    /// <summary>Ranks the classes of encoded images (PNG, JPEG, ...), best first.</summary>
    /// <param name="images">Each image's bytes and a name for error messages.</param>
    /// <param name="top">How many classes to return per image.</param>
    /// <exception cref="ImageDecodeException">An image cannot be decoded; the message names it and says why.</exception>
    public IReadOnlyList<IReadOnlyList<Prediction>> Classify(IReadOnlyList<(byte[] Bytes, string Name)> images, int top)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentOutOfRangeException.ThrowIfLessThan(top, 1);
        var plane = ImageSize * ImageSize;
        var input = new float[images.Count * Channels * plane];
        var decoded = new byte[Channels * DecodeSize * DecodeSize];
        var offset = (int)Math.Round((DecodeSize - ImageSize) / 2.0);
        for (var i = 0; i < images.Count; i++)
        {
            ImageDecoder.Decode(images[i].Bytes, DecodeSize, Channels, decoded, ImageDecoder.DefaultMaxPixels, images[i].Name);
            for (var c = 0; c < Channels; c++)
            {
                for (var y = 0; y < ImageSize; y++)
                {
                    var source = (c * DecodeSize * DecodeSize) + ((y + offset) * DecodeSize) + offset;
                    var target = (((i * Channels) + c) * plane) + (y * ImageSize);
                    for (var x = 0; x < ImageSize; x++)
                    {
                        input[target + x] = (decoded[source + x] * _scale[c]) + _shift[c];
                    }
                }
            }
        }

        var tensor = new DenseTensor<float>(input, [images.Count, Channels, ImageSize, ImageSize]);
        using var results = _session.Run([NamedOnnxValue.CreateFromTensor(OnnxContract.InputName, tensor)], [OnnxContract.LogitsName]);
        var logits = results[0].AsTensor<float>().ToArray();
        var k = Math.Min(top, ClassCount);
        return [.. Enumerable.Range(0, images.Count).Select(i => Rank(logits.AsSpan(i * ClassCount, ClassCount), k))];
    }

    /// <inheritdoc />
    public void Dispose() => _session.Dispose();

    private static int[]? Shape(IReadOnlyDictionary<string, NodeMetadata> nodes, string name) =>
        nodes.TryGetValue(name, out var node) && node.IsTensor ? node.Dimensions : null;

    private IReadOnlyList<Prediction> Rank(ReadOnlySpan<float> logits, int k)
    {
        // Softmax in double, from the largest logit, so no exponent overflows.
        var max = double.NegativeInfinity;
        foreach (var l in logits)
        {
            max = Math.Max(max, l);
        }

        var exp = new double[logits.Length];
        var sum = 0.0;
        for (var j = 0; j < logits.Length; j++)
        {
            sum += exp[j] = Math.Exp(logits[j] - max);
        }

        return [.. Enumerable.Range(0, exp.Length).OrderByDescending(j => exp[j]).ThenBy(j => j).Take(k).Select(j => new Prediction(ClassNames[j], j, exp[j] / sum))];
    }
}
