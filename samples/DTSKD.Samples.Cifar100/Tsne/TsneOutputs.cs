using DTSKD.Core.Data;
using DTSKD.Core.Interop;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// What the release's <c>--tsne 1</c> keeps, and the picture its users draw from it: the test set's backbone logits,
/// backbone features and labels from the best epoch's weights (<c>tsne/test-outputs.safetensors</c>, readable with
/// <c>safetensors.torch.load_file</c>), and a t-SNE map of the features coloured by class (<c>tsne/tsne.png</c>).
/// </summary>
internal static class TsneOutputs
{
    /// <summary>The folder inside a run.</summary>
    public const string Folder = "tsne";

    /// <summary>
    /// Writes both files into <paramref name="run"/>/tsne; returns what it wrote, for the console. They are written into a
    /// folder of their own first and moved into place whole: a failure (a read-only run folder, a full disk) leaves no
    /// half-written tsne/ behind.
    /// </summary>
    /// <exception cref="IOException">The folder could not be written; the message names it.</exception>
    /// <exception cref="UnauthorizedAccessException">The run folder may not be written.</exception>
    public static string Write(string run, MultiBranchModule model, IImageSource test, IBatchAugmentation preprocessing, Device device, int batchSize, long seed, IReadOnlyList<string>? classNames)
    {
        using var scope = NewDisposeScope();
        var (logits, features, labels) = Outputs(model, test, preprocessing, device, batchSize);
        var folder = Path.Combine(run, Folder);
        var staging = Path.Combine(run, $".{Folder}.{Environment.ProcessId}.tmp");
        try
        {
            Directory.CreateDirectory(staging);
            using (var outputs = new Kept(logits, features, labels))
            {
                PyTorchWeights.Save(outputs, Path.Combine(staging, "test-outputs.safetensors"));
            }

            // Barnes-Hut t-SNE is linear in memory: CIFAR-100's 10,000 test images are mapped whole; a larger set through a seeded sample.
            var n = (int)labels.shape[0];
            var sampled = n > TsneMap.MaxPoints;
            var pick = sampled ? randperm(n, generator: new Generator(unchecked((ulong)seed))).narrow(0, 0, TsneMap.MaxPoints).sort().Values : arange(n);
            var points = (int)pick.shape[0];
            var perplexity = TsneMap.PerplexityFor(points, 30);
            var map = TsneMap.Embed(features.index(pick), perplexity, seed: seed);
            var trust = TsneMap.Trustworthiness(features.index(pick), map);
            var lowered = perplexity < 30 ? $", perplexity {perplexity:F1} for {points} points" : "";
            Draw(Path.Combine(staging, "tsne.png"), map, labels.index(pick), classNames, $"t-SNE of the backbone features, {points} of {n} test images{(sampled ? " (a seeded sample)" : "")}; trustworthiness {trust:F3}{lowered}");
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }

            Directory.Move(staging, folder);
            return $"t-SNE: {Path.Combine(folder, "tsne.png")} ({points} of {n} test images{lowered}, trustworthiness {trust:F3}) and the outputs it maps, {Path.Combine(folder, "test-outputs.safetensors")}.";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }

            throw new IOException($"could not write '{folder}': {ex.Message}", ex);
        }
    }

    private static (Tensor Logits, Tensor Features, Tensor Labels) Outputs(MultiBranchModule model, IImageSource test, IBatchAugmentation preprocessing, Device device, int batchSize)
    {
        var classifier = BackboneClassifier.From(model);
        model.eval();
        using var noGrad = no_grad();
        using var reader = test.OpenReader(device);
        using var order = arange(test.Count, ScalarType.Int64);
        var (logits, features, labels) = (new List<Tensor>(), new List<Tensor>(), new List<Tensor>());
        foreach (var batch in reader.Read(order, batchSize))
        {
            using (batch)
            {
                var x = preprocessing.Prepare(batch.Images).to(ScalarType.Float32);
                logits.Add(classifier.call(x).cpu());
                features.Add(classifier.Features(x).cpu());
                labels.Add(batch.Labels.cpu());
            }
        }

        return (cat(logits), cat(features).to(ScalarType.Float64), cat(labels));
    }

    private static void Draw(string file, Tensor map, Tensor labels, IReadOnlyList<string>? classNames, string title)
    {
        var xy = map.data<double>().ToArray();
        var y = labels.data<long>().ToArray();
        var plot = new ScottPlot.Plot();
        foreach (var c in y.Distinct().Order())
        {
            var rows = Enumerable.Range(0, y.Length).Where(i => y[i] == c).ToArray();
            var points = plot.Add.ScatterPoints(rows.Select(i => xy[2 * i]).ToArray(), rows.Select(i => xy[(2 * i) + 1]).ToArray());
            points.MarkerSize = 4;
            points.LegendText = classNames is { } names && c < names.Count ? names[(int)c] : $"class {c}";
        }

        plot.Title(title);
        plot.HideGrid();

        // A hundred classes make a legend taller than the picture: name them only when they fit.
        if (y.Distinct().Count() <= 20)
        {
            plot.ShowLegend(ScottPlot.Edge.Right);
        }

        var png = plot.GetImageBytes(1000, 800, ScottPlot.ImageFormat.Png);
        File.WriteAllBytes(file, png);
    }

    /// <summary>The three tensors as a module's buffers, so the interop writer saves them under their names.</summary>
    private sealed class Kept : nn.Module
    {
        public Kept(Tensor logits, Tensor features, Tensor labels)
            : base("tsne")
        {
            // Handles of their own: disposing the module disposes its buffers, not the caller's tensors.
            register_buffer("logits", logits.alias());
            register_buffer("features", features.to(ScalarType.Float32));
            register_buffer("labels", labels.alias());
        }
    }
}
