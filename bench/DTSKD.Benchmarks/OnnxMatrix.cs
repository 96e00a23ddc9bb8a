using System.Diagnostics;
using System.Globalization;
using System.Text;
using DTSKD.Core;
using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Onnx;
using DTSKD.Core.Onnx.Import;
using DTSKD.Core.Training;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using DTSKD.Core.Deployment;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using Tensor = TorchSharp.torch.Tensor;

namespace DTSKD.Benchmarks;

/// <summary>
/// The importer against the files torch.onnx writes (eng/export-torchvision-matrix.py): for each file of a manifest, the
/// import with no options, the imported logits against ONNX Runtime's on the same images, one fine-tuning epoch (the
/// loss on its images before and after), and the fine-tuned network exported again with ONNX Runtime against TorchSharp.
/// </summary>
public static class OnnxMatrix
{
    private const string FashionMnist = "/usr/share/datasets/fashion-mnist";

    /// <summary>One file of the manifest: its path, the family and opset it was exported from, its mode, input side, and the file ONNX Runtime's reference logits come from.</summary>
    private sealed record Entry(string File, string Family, int Opset, string Mode, int Size, string Reference);

    /// <summary>What one file gave.</summary>
    private sealed record Outcome(Entry Entry, bool Imports, double? Difference, double? LossBefore, double? LossAfter, double? ExportDifference, int Branches, double Seconds, string Note);

    public static int Run(string manifest, int trainImages, int testImages, string? output, string command)
    {
        if (!File.Exists(manifest))
        {
            Console.Error.WriteLine($"error: --manifest '{manifest}' does not exist (write it with eng/export-torchvision-matrix.py).");
            return 2;
        }

        if (!Directory.Exists(FashionMnist))
        {
            Console.Error.WriteLine($"error: the matrix trains on Fashion-MNIST, which is not in {FashionMnist} (apt-get install dataset-fashion-mnist).");
            return 2;
        }

        var folder = Path.GetDirectoryName(Path.GetFullPath(manifest))!;
        var entries = new List<Entry>();
        foreach (var line in File.ReadLines(manifest).Skip(1).Where(l => l.Length > 0))
        {
            var f = line.Split('\t');
            if (f.Length != 6 || !int.TryParse(f[2], CultureInfo.InvariantCulture, out var opset) || !int.TryParse(f[4], CultureInfo.InvariantCulture, out var size))
            {
                Console.Error.WriteLine($"error: --manifest '{manifest}': the line '{line}' is not file, family, opset, mode, size, reference separated by tabs.");
                return 2;
            }

            entries.Add(new Entry(Path.Combine(folder, f[0]), f[1], opset, f[3], size, Path.Combine(folder, f[5])));
        }

        Console.WriteLine($"Machine: {MachineInfo.Describe(CPU)}");
        using var data = StandardDatasets.LoadAsync(StandardDatasets.FashionMnist, trainLimit: trainImages, testLimit: testImages).GetAwaiter().GetResult();
        var outcomes = new List<Outcome>();
        foreach (var entry in entries)
        {
            var outcome = Measure(entry, data, trainImages, testImages);
            outcomes.Add(outcome);
            Console.WriteLine(Row(outcome));
        }

        var report = Report(outcomes, trainImages, testImages, command);
        if (output is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
            File.WriteAllText(output, report);
            Console.WriteLine($"Wrote {output}");
        }

        return outcomes.All(o => o.Imports && o.Difference <= 1e-4 && o.LossAfter < o.LossBefore && o.ExportDifference <= 1e-4) ? 0 : 1;
    }

    private static Outcome Measure(Entry entry, DatasetSplits data, int trainImages, int testImages)
    {
        var clock = Stopwatch.StartNew();
        Outcome Failed(string why, double? difference = null, double? before = null, double? after = null, int branches = 0) =>
            new(entry, difference is not null, difference, before, after, null, branches, clock.Elapsed.TotalSeconds, why);
        var (options, _) = OnnxImport.RecommendedOptions(entry.File);
        using var test = Images((ImageDataset)data.Test, testImages, entry.Size, options);
        double difference;
        try
        {
            // The file's own logits: the backbone imported up to the graph's output, against ONNX Runtime on the reference file.
            var output = OnnxImport.RecommendedOptions(entry.File).Options;
            var (backbone, _) = OnnxImport.LoadBackbone(entry.File, new OnnxImportOptions { FeaturePoint = GraphOutput(entry.File), Mean = output.Mean, Std = output.Std });
            using (backbone)
            {
                backbone.eval();
                using var noGrad = no_grad();
                using var scope = NewDisposeScope();
                var logits = backbone.call(test.Images).Feature.flatten(1).contiguous();
                difference = Gap(logits, Runtime(entry.Reference, test.Images));
            }
        }
        catch (Exception ex) when (ex is InvalidDataException or NotSupportedException or ArgumentException)
        {
            return Failed(ex.Message);
        }

        PretrainedNetwork network;
        try
        {
            // Every row's new layers start from the same draw, whatever rows ran before it in this process.
            manual_seed(1);
            network = OnnxImport.Load(entry.File, new MultiBranchModelOptions { ClassCount = 10, NeckWidth = 64 }, options);
        }
        catch (Exception ex) when (ex is InvalidDataException or NotSupportedException or ArgumentException)
        {
            return Failed(ex.Message, difference);
        }

        using var model = network.Model;
        using var train = Images((ImageDataset)data.Train, trainImages, entry.Size, options);
        using var dataset = ImageDataset.FromTensors(train.Pixels, train.Labels, 10);
        var before = Loss(model, train.Images, train.Labels);
        var recipe = TrainerOptions.FineTuningRecipe(1);
        // The fine-tuning recipe as a user runs it (its one-epoch warm-up included), at batch 16.
        (recipe.BatchSize, recipe.EvalBatchSize, recipe.FineTuning, recipe.Seed) = (16, 32, FineTuning.For(network), 1);
        // The trainer's own evaluation is not what is measured: the test images' pixels, not the training set again.
        using var held = ImageDataset.FromTensors(test.Pixels, test.Labels, 10);
        using (var loss = DualTeacherLoss.For(model, dataset.Count))
        using (var trainer = new Trainer(model, loss, dataset, held, new PadCropFlip(network.Mean, network.Std, padding: entry.Size / 8), recipe))
        {
            try
            {
                trainer.Run();
            }
            catch (TrainingDivergedException ex)
            {
                // A row of the matrix, not the end of it: the file is reported with what the trainer said.
                return Failed("fine-tuning diverged: " + ex.Message.Split(". ")[0], difference, before, branches: model.BranchCount);
            }
        }

        var after = Loss(model, train.Images, train.Labels);
        double exported;
        try
        {
            model.eval();
            var bytes = OnnxExport.ToBytes(model, new OnnxExportOptions { ImageSize = entry.Size, Mean = network.Mean, Std = network.Std, AllHeads = true });
            using var session = new InferenceSession(bytes);
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var heads = model.call(test.Images);
            var onnx = Run(session, OnnxContract.InputName, test.Images);
            var gaps = new[] { heads.Backbone }.Concat(heads.Branches).Select((h, i) => Gap(h.contiguous(), onnx[i])).ToList();
            if (Environment.GetEnvironmentVariable("DTSKD_MATRIX_HEADS") is not null)
            {
                Console.WriteLine($"  heads: {string.Join(", ", gaps.Select(g => g.ToString("0.0e+0", CultureInfo.InvariantCulture)))}; largest |logit| per head: {string.Join(", ", new[] { heads.Backbone }.Concat(heads.Branches).Select(h => h.abs().max().item<float>().ToString("0.000", CultureInfo.InvariantCulture)))}");
            }

            exported = gaps.Max();
        }
        catch (Exception ex) when (ex is NotSupportedException or OnnxRuntimeException)
        {
            return Failed("export: " + ex.Message.Split('\n')[0], difference, before, after, model.BranchCount);
        }

        var notes = new List<string>();
        if (network.RequiredImageSize is { } required)
        {
            notes.Add($"takes {required} px only");
        }

        if (!network.Notes.Any(n => n.StartsWith("The file's batch norms were exported in training mode", StringComparison.Ordinal)) && network.Notes.Any(n => n.StartsWith("The file has no batch norms", StringComparison.Ordinal)))
        {
            notes.Add("no batch norms");
        }

        return new Outcome(entry, true, difference, before, after, exported, model.BranchCount, clock.Elapsed.TotalSeconds, string.Join("; ", notes));
    }

    private static string GraphOutput(string path) => Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(path)).Graph.Output[0].Name;

    /// <summary>The images of a split at the network's side, gray replicated into RGB: pixels (uint8), normalised images and labels.</summary>
    private sealed class Prepared : IDisposable
    {
        public required Tensor Pixels { get; init; }

        public required Tensor Images { get; init; }

        public required Tensor Labels { get; init; }

        public void Dispose()
        {
            Pixels.Dispose();
            Images.Dispose();
            Labels.Dispose();
        }
    }

    private static Prepared Images(ImageDataset split, int count, int size, OnnxImportOptions options)
    {
        using var scope = NewDisposeScope();
        using var raw = split.Images.narrow(0, 0, count).to(ScalarType.Float32);
        var resized = F.interpolate(raw, [size, size], mode: InterpolationMode.Bilinear, align_corners: false).expand(-1, 3, -1, -1);
        var pixels = resized.round().clamp(0, 255).to(ScalarType.Byte).contiguous();
        using var mean = tensor(options.Mean.Select(m => (float)m).ToArray()).reshape(1, 3, 1, 1);
        using var std = tensor(options.Std.Select(s => (float)s).ToArray()).reshape(1, 3, 1, 1);
        var images = pixels.to(ScalarType.Float32).div(255).sub(mean).div(std).contiguous();
        return new Prepared
        {
            Pixels = pixels.MoveToOuterDisposeScope(),
            Images = images.MoveToOuterDisposeScope(),
            Labels = split.Labels.narrow(0, 0, count).clone().MoveToOuterDisposeScope(),
        };
    }

    /// <summary>The backbone head's cross-entropy on the images, in evaluation.</summary>
    private static double Loss(MultiBranchModule model, Tensor images, Tensor labels)
    {
        model.eval();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var sum = 0.0;
        for (var i = 0; i < images.shape[0]; i += 32)
        {
            var n = Math.Min(32, images.shape[0] - i);
            var logits = model.call(images.narrow(0, i, n)).Backbone;
            sum += F.cross_entropy(logits, labels.narrow(0, i, n), reduction: nn.Reduction.Sum).item<float>();
        }

        return sum / images.shape[0];
    }

    /// <summary>The largest difference over the rows, each relative to the row's largest TorchSharp value.</summary>
    private static double Gap(Tensor torch, float[][] onnx)
    {
        var rows = (int)torch.shape[0];
        var width = (int)torch.shape[1];
        var flat = torch.to(ScalarType.Float32).data<float>().ToArray();
        var worst = 0.0;
        for (var r = 0; r < rows; r++)
        {
            var row = flat.AsSpan(r * width, width);
            var scale = 0.0;
            foreach (var v in row)
            {
                scale = Math.Max(scale, Math.Abs(v));
            }

            for (var j = 0; j < width; j++)
            {
                worst = Math.Max(worst, Math.Abs(row[j] - onnx[r][j]) / Math.Max(scale, 1e-12));
            }
        }

        return worst;
    }

    private static float[][] Runtime(string file, Tensor images)
    {
        using var session = new InferenceSession(file);
        return Run(session, session.InputMetadata.Keys.First(), images)[0];
    }

    /// <summary>Each output of the session, as rows, for the images one at a time (the files fix batch 1).</summary>
    private static List<float[][]> Run(InferenceSession session, string input, Tensor images)
    {
        var outputs = new List<List<float[]>>();
        for (var i = 0; i < images.shape[0]; i++)
        {
            using var one = images.narrow(0, i, 1).contiguous();
            var dense = new DenseTensor<float>(one.data<float>().ToArray(), [.. one.shape.Select(d => (int)d)]);
            using var results = session.Run([NamedOnnxValue.CreateFromTensor(input, dense)]);
            var k = 0;
            foreach (var r in results)
            {
                if (outputs.Count <= k)
                {
                    outputs.Add([]);
                }

                outputs[k++].Add(r.AsTensor<float>().ToArray());
            }
        }

        return [.. outputs.Select(o => o.ToArray())];
    }

    private static string Row(Outcome o)
    {
        var inv = CultureInfo.InvariantCulture;
        string N(double? v, string format) => v is { } x ? x.ToString(format, inv) : "-";
        return $"| {o.Entry.Family} | {o.Entry.Opset} | {o.Entry.Mode} | {o.Entry.Size} | {(o.Imports ? "yes" : "**no**")} | {N(o.Difference, "0.0e+0")} | {o.Branches} | " +
               $"{N(o.LossBefore, "0.000")} -> {N(o.LossAfter, "0.000")} | {N(o.ExportDifference, "0.0e+0")} | {o.Seconds.ToString("0", inv)} | {o.Note.Replace("|", "\\|", StringComparison.Ordinal)} |";
    }

    private static string Report(List<Outcome> outcomes, int trainImages, int testImages, string command)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Measured on {DateTime.UtcNow:yyyy-MM-dd}: {MachineInfo.Describe(CPU)}. Each file imported with no options; logits against ONNX Runtime on {testImages} Fashion-MNIST test images (largest difference relative to each row's largest logit); one fine-tuning epoch (DTSKD, the fine-tuning recipe with its warm-up, batch 16) on {trainImages} training images, with the backbone head's cross-entropy on them before and after; the fine-tuned network exported with every head and run by ONNX Runtime against TorchSharp; seconds for all of it.");
        text.AppendLine();
        text.AppendLine("| family | opset | mode | side | imports | logits vs ORT | branches | loss before -> after | export vs TorchSharp | s | note |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var o in outcomes)
        {
            text.AppendLine(Row(o));
        }

        text.AppendLine();
        var good = outcomes.Count(o => o.Imports && o.Difference <= 1e-4 && o.LossAfter < o.LossBefore && o.ExportDifference <= 1e-4);
        text.AppendLine(CultureInfo.InvariantCulture, $"{good} of {outcomes.Count} files import, match ONNX Runtime within 1e-4, lower the loss in one epoch and export again within 1e-4. Command: `{command}`.");
        return text.ToString();
    }
}
