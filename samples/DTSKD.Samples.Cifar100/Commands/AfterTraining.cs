using System.Globalization;
using DTSKD.Core.Data;
using DTSKD.Core.Interop;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// What a user does with a trained run: <c>evaluate</c> it again on the test set, <c>export</c> the plain classifier it
/// contains (the backbone and its head) for PyTorch or TorchSharp, and <c>predict</c> the classes of image files.
/// </summary>
public static class AfterTraining
{
    public static async Task<int> RunAsync(ToolRequest request, IAnsiConsole console, TextWriter errors, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(console);
        ArgumentNullException.ThrowIfNull(errors);
        try
        {
            // An exported .onnx file needs neither the run nor LibTorch: ONNX Runtime and the file's own metadata.
            if (request.Onnx is { } onnx)
            {
                return PredictCommand.Onnx(onnx, request, console, errors);
            }

            // 1. The model and the data: from the run's config.json, or from the command line.
            var (options, weights) = TrainedRun.Resolve(request);
            set_num_threads(options.Threads);
            // A run trained on a GPU is evaluated on this machine's CPU when it has none.
            var device = options.Device != "cpu" && TrainingDevice.CudaAvailable ? TrainingDevice.Choose(options.Device) : CPU;
            var described = SampleData.Describe(options);
            using var model = PretrainedStart.Create(options, described.Classes, described.Stored.Channels);
            using var backbone = BackboneClassifier.From(model);

            // 2. The weights: a trainer checkpoint, a PyTorch state dict of the whole model, or of its exported backbone.
            var (summary, backboneOnly) = TrainedRun.LoadWeights(model, backbone, weights, options);
            model.eval();
            switch (request.Command)
            {
                case "evaluate":
                    await EvaluateCommand.RunAsync(model, options, described.Preprocessing, device, summary, backboneOnly, request.Precision, console, cancellationToken, request.Run,
                        request.Tsne ? request.Run ?? Path.GetDirectoryName(Path.GetFullPath(weights)) : null).ConfigureAwait(false);
                    return Sample.Ok;
                case "export" when request.Format == "onnx":
                    return ExportCommand.Onnx(model, request, options, weights, described, console, errors);
                case "export":
                    return ExportCommand.PyTorch(backbone, request, options, weights, console, errors);
                default:
                    return PredictCommand.TorchSharp(backbone, request, described, console, errors);
            }
        }
        catch (Core.Images.ImageFolderException ex)
        {
            errors.WriteLine($"error: {ex.Summary}");
            return Sample.Failed;
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or InvalidDataException or UnauthorizedAccessException or System.Text.Json.JsonException or NotSupportedException)
        {
            errors.WriteLine($"error: {ex.Message}");
            return Sample.Failed;
        }
    }
}
