using System.Globalization;
using DTSKD.Core.Data;
using DTSKD.Core.Interop;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using Spectre.Console;
using TorchSharp;
using DTSKD.Core.Deployment;
using DTSKD.Samples.Inference;
using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// <c>predict</c>: the classes of image files, with a trained run on TorchSharp or an exported file on ONNX Runtime.
/// Files are read and classified a batch at a time and answered as each batch finishes, so memory does not grow with
/// the number of files; a file that cannot be used is named on stderr and the others are still answered (exit 1).
/// </summary>
internal static class PredictCommand
{
    public static int Onnx(string path, ToolRequest request, IAnsiConsole console, TextWriter errors)
    {
        if (!File.Exists(path))
        {
            errors.WriteLine($"error: --onnx '{path}' does not exist.");
            return Sample.Failed;
        }

        OnnxClassifier loaded;
        try
        {
            loaded = new OnnxClassifier(path);
        }
        catch (InvalidDataException ex)
        {
            // The server's own start-up check: a file it would refuse to serve is refused here too.
            errors.WriteLine($"error: --onnx {ex.Message}");
            return Sample.BadArguments;
        }

        using var classifier = loaded;
        return Stream(
            request, console, errors,
            file =>
            {
                var bytes = File.ReadAllBytes(file);

                // The header is weighed first, as the server does: a bomb is refused before anything is allocated for it.
                classifier.DecodedBytes(bytes, file);
                return bytes;
            },
            batch => Classify(classifier, batch, request.Top));
    }

    public static int TorchSharp(
        BackboneClassifier backbone, ToolRequest request, (ImageShape Stored, int Classes, IReadOnlyList<string>? Names, IBatchAugmentation Preprocessing) data,
        IAnsiConsole console, TextWriter errors)
    {
        // Images are decoded as training saw its data (ImageDecoder).
        var (stored, _, names, preprocessing) = data;
        var size = stored.Height;
        return Stream(
            request, console, errors,
            file =>
            {
                var pixels = new byte[stored.Bytes];
                ImageDecoder.DecodeFile(file, size, stored.Channels, pixels);
                return pixels;
            },
            batch =>
            {
                using var scope = NewDisposeScope();
                using var noGrad = no_grad();
                var pixels = new byte[batch.Count * stored.Bytes];
                for (var i = 0; i < batch.Count; i++)
                {
                    batch[i].Image.CopyTo(pixels, i * stored.Bytes);
                }

                var images = tensor(pixels, [batch.Count, stored.Channels, size, size], ScalarType.Byte);
                var probabilities = backbone.call(preprocessing.Prepare(images)).softmax(1);
                var k = Math.Min(request.Top, (int)probabilities.shape[1]);
                var (values, indices) = probabilities.topk(k, dim: 1);
                var p = values.data<float>().ToArray();
                var c = indices.data<long>().ToArray();
                return [.. Enumerable.Range(0, batch.Count).Select(i => Answer.Of(
                    Enumerable.Range(0, k).Select(j => (names is null ? $"class {c[(i * k) + j]}" : names[(int)c[(i * k) + j]], (double)p[(i * k) + j]))))];
            });
    }

    /// <summary>Reads the request's files a batch at a time, classifies each batch and prints its answers in the files' order.</summary>
    private static int Stream<TImage>(
        ToolRequest request, IAnsiConsole console, TextWriter errors,
        Func<string, TImage> read, Func<IReadOnlyList<(string File, TImage Image)>, IReadOnlyList<Answer>> classify)
    {
        var batch = new List<(string File, TImage Image)>(request.BatchSize);
        var failed = 0;
        void Fail(string problem)
        {
            errors.WriteLine($"error: {problem}");
            failed++;
        }

        void Classify()
        {
            var answers = classify(batch);
            for (var i = 0; i < batch.Count; i++)
            {
                if (answers[i].Error is { } error)
                {
                    Fail(error);
                }
                else
                {
                    console.WriteLine($"{batch[i].File}: {answers[i].Text}");
                }
            }

            batch.Clear();
        }

        foreach (var file in request.Images)
        {
            if (Directory.Exists(file))
            {
                Fail($"'{file}' is a folder; give image files (for every image in it: '{Path.Combine(file, "*")}').");
                continue;
            }

            if (!File.Exists(file))
            {
                Fail($"image '{file}' does not exist.");
                continue;
            }

            try
            {
                batch.Add((file, read(file)));
            }
            catch (ImageDecodeException ex)
            {
                Fail(ex.Message);
                continue;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Removed between the check and the read, or not readable by this user.
                Fail($"image '{file}' cannot be read: {ex.Message}");
                continue;
            }

            if (batch.Count == request.BatchSize)
            {
                Classify();
            }
        }

        if (batch.Count > 0)
        {
            Classify();
        }

        if (failed > 0 && request.Images.Count > 1)
        {
            errors.WriteLine($"error: {failed} of {request.Images.Count} images could not be classified (named above); {request.Images.Count - failed} answered.");
        }

        return failed > 0 ? Sample.Failed : Sample.Ok;
    }

    /// <summary>One batch on ONNX Runtime; when an image fails past its header, the batch is answered image by image so only that one is lost.</summary>
    private static IReadOnlyList<Answer> Classify(OnnxClassifier classifier, IReadOnlyList<(string File, byte[] Image)> batch, int top)
    {
        try
        {
            return [.. classifier.Classify([.. batch.Select(b => (b.Image, b.File))], top).Select(ranked => Answer.Of(ranked.Select(p => (p.Label, p.Probability))))];
        }
        catch (ImageDecodeException) when (batch.Count > 1)
        {
            return [.. batch.Select(b => Classify(classifier, [b], top)[0])];
        }
        catch (ImageDecodeException ex)
        {
            return [new Answer(null, ex.Message)];
        }
    }

    /// <summary>One file's printed classes, or why it has none.</summary>
    private sealed record Answer(string? Text, string? Error)
    {
        public static Answer Of(IEnumerable<(string Label, double Probability)> ranked) =>
            new(string.Join(", ", ranked.Select(r => string.Create(CultureInfo.InvariantCulture, $"{r.Label} {100 * r.Probability:F2}%"))), null);
    }
}
