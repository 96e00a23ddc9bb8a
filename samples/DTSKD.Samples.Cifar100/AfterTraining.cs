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
                return PredictOnnx(onnx, request, console, errors);
            }

            // 1. The model and the data: from the run's config.json, or from the command line.
            var (options, weights) = Resolve(request);
            set_num_threads(options.Threads);
            // A run trained on a GPU is evaluated on this machine's CPU when it has none.
            var device = options.Device != "cpu" && TrainingDevice.CudaAvailable ? TrainingDevice.Choose(options.Device) : CPU;
            var described = SampleData.Describe(options);
            using var model = MultiBranchModels.Create(options.ClassifierType, options.ModelOptions(described.Classes, described.Stored.Channels));
            using var backbone = BackboneClassifier.From(model);

            // 2. The weights: a trainer checkpoint, a PyTorch state dict of the whole model, or of its exported backbone.
            var (summary, backboneOnly) = LoadWeights(model, backbone, weights, options);
            model.eval();
            switch (request.Command)
            {
                case "evaluate":
                    await EvaluateAsync(model, options, device, summary, backboneOnly, request.Precision, console, cancellationToken).ConfigureAwait(false);
                    return Sample.Ok;
                case "export" when request.Format == "onnx":
                    return ExportOnnx(model, request, options, weights, described, console, errors);
                case "export":
                    return Export(backbone, request, options, weights, console, errors);
                default:
                    return Predict(backbone, request, described, console, errors);
            }
        }
        catch (Core.Images.ImageFolderException ex)
        {
            errors.WriteLine($"error: {ex.Summary}");
            return Sample.Failed;
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or InvalidDataException or UnauthorizedAccessException or System.Text.Json.JsonException)
        {
            errors.WriteLine($"error: {ex.Message}");
            return Sample.Failed;
        }
    }

    private static (ExperimentConfig Options, string Weights) Resolve(ToolRequest request)
    {
        var options = request.Options;
        string? checkpoint = null;
        if (request.Run is { } run)
        {
            if (!File.Exists(Path.Combine(run, "config.json")))
            {
                throw new FileNotFoundException($"'{run}' is not a run folder: it has no config.json (give --run the folder training wrote, or --weights a file).");
            }

            var saved = ExperimentOutputs.ReadConfig(run);

            // The run decides the model and the data; the command line may point at another copy of the data, or use part of it.
            options = saved with
            {
                DataPath = request.Options.DataPath ?? saved.DataPath,
                TestLimit = request.Options.TestLimit ?? saved.TestLimit,
                Device = request.Options.Device,
                Threads = request.Options.Threads,
            };
            checkpoint = request.Checkpoint switch
            {
                "best" => File.Exists(Path.Combine(run, "best.ckpt")) ? Path.Combine(run, "best.ckpt") : Path.Combine(run, "last.ckpt"),
                "last" => Path.Combine(run, "last.ckpt"),
                var file => file,
            };
        }

        var weights = request.Weights ?? checkpoint!;
        if (Directory.Exists(weights))
        {
            throw new FileNotFoundException($"'{weights}' is a folder, not a weights file (give a run folder with --run).", weights);
        }

        return File.Exists(weights) ? (options, weights) : throw new FileNotFoundException($"'{weights}' does not exist.", weights);
    }

    private static (CheckpointSummary? Summary, bool BackboneOnly) LoadWeights(MultiBranchModule model, BackboneClassifier backbone, string weights, ExperimentConfig options)
    {
        var what = $"{options.ClassifierType} ({SampleData.Describe(options).Classes} classes, width {options.BaseWidth})";
        var checkpoint = weights.EndsWith(".ckpt", StringComparison.OrdinalIgnoreCase);

        // First whether the file can be read at all, then whether it fits the model: two different things to fix.
        HashSet<string> names;
        try
        {
            names = checkpoint ? new HashSet<string>() : PyTorchWeights.Describe(weights).Keys.ToHashSet(StringComparer.Ordinal);
            _ = checkpoint ? TrainerCheckpoint.ReadSummary(weights) : null;
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"'{weights}' cannot be read as {(checkpoint ? "a DTSKD.Core checkpoint" : "PyTorch weights (.pt/.pth/.bin from torch.save, or .safetensors)")}: {Detail(ex, weights)}", ex);
        }

        try
        {
            if (checkpoint)
            {
                return (TrainerCheckpoint.LoadModel(weights, model), false);
            }

            // A state dict: the whole multi-branch model, or the plain classifier that export wrote.
            var backboneNames = backbone.state_dict().Keys.ToHashSet(StringComparer.Ordinal);
            var onlyBackbone = names.IsSubsetOf(backboneNames) && names.Count > 0;
            PyTorchWeights.Load(onlyBackbone ? backbone : model, weights);
            return (null, onlyBackbone);
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"'{weights}' does not fit {what}: {Detail(ex, weights)}", ex);
        }
    }

    /// <summary>An error's message without the file name the caller's message already gives.</summary>
    private static string Detail(Exception ex, string file) =>
        ex.Message.Replace($"Checkpoint '{file}' ", string.Empty, StringComparison.Ordinal).Replace($"'{file}' ", string.Empty, StringComparison.Ordinal);

    private static async Task EvaluateAsync(
        MultiBranchModule model, ExperimentConfig options, Device device, CheckpointSummary? summary, bool backboneOnly, string precisionOption, IAnsiConsole console, CancellationToken ct)
    {
        var (data, _) = await SampleData.LoadAsync(options with { TrainLimit = 1, Download = false }, console, ct).ConfigureAwait(false);
        using var _ = data;
        model.to(device);

        // As the run evaluated itself, unless asked otherwise: a half-precision run's figures come back only in its precision.
        var precision = precisionOption == "run" ? summary?.Precision ?? TrainingPrecision.Float32 : SampleRecipe.Precision(options with { Precision = precisionOption }, device);
        var result = Evaluator.Evaluate(model, data.Test, data.Preprocessing, device, options.EvalBatchSize, precision);
        var inv = CultureInfo.InvariantCulture;
        console.WriteLine(string.Create(inv, $"{options.ClassifierType} on {data.Test.Name} ({result.Count} test images, {precision}):"));
        for (var h = 0; h < (backboneOnly ? 1 : result.Top1.Count); h++)
        {
            console.WriteLine(string.Create(inv, $"  {(h == 0 ? "backbone" : $"branch {h}"),-9} top-1 {result.Top1[h]:F2}%"));
        }

        console.WriteLine(string.Create(inv, $"  backbone  top-5 {result.Top5:F2}%  loss {result.Loss:F4}"));
        if (summary is { Metrics.Count: > 0 } s && s.StepsDone == 0)
        {
            var m = s.Metrics[^1];
            console.WriteLine(string.Create(inv, $"The run reported for epoch {m.Epoch + 1}: backbone top-1 {m.TestTop1[0]:F2}%, top-5 {m.TestTop5:F2}%, loss {m.TestLoss:F4}."));
        }
    }

    private static int Export(BackboneClassifier backbone, ToolRequest request, ExperimentConfig options, string weights, IAnsiConsole console, TextWriter errors)
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

    private static int ExportOnnx(
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
            $"Wrote {summary.Path}: {options.ClassifierType}, ONNX opset {Core.Onnx.OnnxContract.Opset}, outputs {string.Join(", ", summary.Outputs)}, {summary.Weights:N0} weights, {summary.Bytes:N0} bytes{(request.FoldBatchNorm ? $", {summary.FoldedBatchNorms} batch norms folded" : "")}."));
        console.WriteLine("Run it with ONNX Runtime (`predict --onnx`, samples/DTSKD.Samples.Serve) or ML.NET: docs/deploy.md.");
        return Sample.Ok;
    }

    private static int PredictOnnx(string path, ToolRequest request, IAnsiConsole console, TextWriter errors)
    {
        if (!File.Exists(path))
        {
            errors.WriteLine($"error: --onnx '{path}' does not exist.");
            return Sample.Failed;
        }

        using var classifier = new Serve.OnnxClassifier(path);
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

    private static int Predict(
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
