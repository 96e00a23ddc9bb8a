using System.Globalization;
using DTSKD.Core.Data;
using DTSKD.Core.Interop;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100;

/// <summary><c>predict</c>: the classes of image files, with a trained run on TorchSharp or an exported file on ONNX Runtime.</summary>
internal static class PredictCommand
{
    public static int Onnx(string path, ToolRequest request, IAnsiConsole console, TextWriter errors)
    {
        if (!File.Exists(path))
        {
            errors.WriteLine($"error: --onnx '{path}' does not exist.");
            return Sample.Failed;
        }

        Serve.OnnxClassifier loaded;
        try
        {
            loaded = new Serve.OnnxClassifier(path);
        }
        catch (InvalidDataException ex)
        {
            // The server's own start-up check: a file it would refuse to serve is refused here too.
            errors.WriteLine($"error: --onnx {ex.Message}");
            return Sample.BadArguments;
        }

        using var classifier = loaded;
        var images = new List<(byte[] Bytes, string Name)>();
        foreach (var file in request.Images)
        {
            if (!File.Exists(file))
            {
                errors.WriteLine(Directory.Exists(file)
                    ? $"error: '{file}' is a folder; give image files (for every image in it: '{Path.Combine(file, "*")}')."
                    : $"error: image '{file}' does not exist.");
                return Sample.Failed;
            }

            images.Add((File.ReadAllBytes(file), file));
        }

        IReadOnlyList<IReadOnlyList<Serve.Prediction>> ranked;
        try
        {
            ranked = classifier.Classify(images, request.Top);
        }
        catch (Core.Images.ImageDecodeException ex)
        {
            errors.WriteLine($"error: {ex.Message}");
            return Sample.Failed;
        }

        for (var i = 0; i < images.Count; i++)
        {
            console.WriteLine($"{images[i].Name}: {string.Join(", ", ranked[i].Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Label} {100 * p.Probability:F2}%")))}");
        }

        return Sample.Ok;
    }

    public static int TorchSharp(
        BackboneClassifier backbone, ToolRequest request, (ImageShape Stored, int Classes, IReadOnlyList<string>? Names, IBatchAugmentation Preprocessing) data,
        IAnsiConsole console, TextWriter errors)
    {
        // Every image is read first, as training saw its data (Core.Images.ImageDecoder): one unreadable file stops the
        // command before anything is printed.
        var (stored, _, names, preprocessing) = data;
        var size = stored.Height;
        var pixels = new byte[request.Images.Count * stored.Bytes];
        for (var i = 0; i < request.Images.Count; i++)
        {
            var file = request.Images[i];
            if (Directory.Exists(file))
            {
                errors.WriteLine($"error: '{file}' is a folder; give image files (for every image in it: '{Path.Combine(file, "*")}').");
                return Sample.Failed;
            }

            if (!File.Exists(file))
            {
                errors.WriteLine($"error: image '{file}' does not exist.");
                return Sample.Failed;
            }

            try
            {
                Core.Images.ImageDecoder.DecodeFile(file, size, stored.Channels, pixels.AsSpan((int)(i * stored.Bytes), (int)stored.Bytes));
            }
            catch (Core.Images.ImageDecodeException ex)
            {
                errors.WriteLine($"error: {ex.Message}");
                return Sample.Failed;
            }
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var batch = tensor(pixels, [request.Images.Count, stored.Channels, size, size], ScalarType.Byte);
        var probabilities = backbone.call(preprocessing.Prepare(batch)).softmax(1);
        var k = Math.Min(request.Top, (int)probabilities.shape[1]);
        var (values, indices) = probabilities.topk(k, dim: 1);
        var p = values.data<float>().ToArray();
        var c = indices.data<long>().ToArray();
        for (var i = 0; i < request.Images.Count; i++)
        {
            var ranked = Enumerable.Range(0, k).Select(j =>
                string.Create(CultureInfo.InvariantCulture, $"{(names is null ? $"class {c[(i * k) + j]}" : names[(int)c[(i * k) + j]])} {100 * p[(i * k) + j]:F2}%"));
            console.WriteLine($"{request.Images[i]}: {string.Join(", ", ranked)}");
        }

        return Sample.Ok;
    }
}
