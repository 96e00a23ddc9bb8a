using System.Globalization;
using DTSKD.Core.Data;
using DTSKD.Core.Interop;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using Spectre.Console;
using TorchSharp;
using DTSKD.Core.Deployment;
using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100;

/// <summary><c>export</c>: the plain classifier a run contains, as PyTorch state dicts or as ONNX.</summary>
internal static class ExportCommand
{
    public static int PyTorch(BackboneClassifier backbone, ToolRequest request, ExperimentConfig options, string weights, IAnsiConsole console, TextWriter errors)
    {
        var stem = request.Output ?? Path.Combine(request.Run ?? Path.GetDirectoryName(Path.GetFullPath(weights))!, "backbone");
        var folder = new RunFolder(Path.GetDirectoryName(Path.GetFullPath(stem))!);
        if (folder.WhyNotWritable() is { } why)
        {
            errors.WriteLine($"error: --output '{stem}': {why}.");
            return Sample.BadArguments;
        }

        PyTorchWeights.Save(backbone, stem + ".pt");
        PyTorchWeights.Save(backbone, stem + ".safetensors");
        var parameters = backbone.parameters().Sum(p => p.numel());
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Wrote {stem}.pt and {stem}.safetensors: the {options.ClassifierType} backbone and its head, {backbone.state_dict().Count} tensors, {parameters:N0} parameters."));
        console.WriteLine("Load it into the plain network with strict=True (docs/interop.md), or here with `predict --weights`.");
        return Sample.Ok;
    }

    public static int Onnx(
        MultiBranchModule model, ToolRequest request, ExperimentConfig options, string weights,
        (ImageShape Stored, int Classes, IReadOnlyList<string>? Names, IBatchAugmentation Preprocessing) data, IAnsiConsole console, TextWriter errors)
    {
        var stem = request.Output ?? Path.Combine(request.Run ?? Path.GetDirectoryName(Path.GetFullPath(weights))!, "backbone");
        var folder = new RunFolder(Path.GetDirectoryName(Path.GetFullPath(stem))!);
        if (folder.WhyNotWritable() is { } why)
        {
            errors.WriteLine($"error: --output '{stem}': {why}.");
            return Sample.BadArguments;
        }

        // The preprocessing the run evaluated with: decoded at the stored size, centre-cropped to what the model sees.
        var (stored, _, names, preprocessing) = data;
        var summary = Core.Onnx.OnnxExport.Export(model, stem + ".onnx", new Core.Onnx.OnnxExportOptions
        {
            ImageSize = preprocessing.OutputShape(stored).Height, DecodeSize = stored.Height, Mean = preprocessing.Mean, Std = preprocessing.Std,
            ClassNames = names, AllHeads = request.AllHeads, FoldBatchNorm = request.FoldBatchNorm,
        });
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Wrote {summary.Path}: {options.ClassifierType}, ONNX opset {OnnxContract.Opset}, outputs {string.Join(", ", summary.Outputs)}, {summary.Weights:N0} weights, {summary.Bytes:N0} bytes{(request.FoldBatchNorm ? $", {summary.FoldedBatchNorms} batch norms folded" : "")}."));
        console.WriteLine("Run it with ONNX Runtime (`predict --onnx`, samples/DTSKD.Samples.Serve) or ML.NET: docs/deploy.md.");
        return Sample.Ok;
    }
}
