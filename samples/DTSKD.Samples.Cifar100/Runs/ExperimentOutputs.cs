using System.Globalization;
using System.Text;
using System.Text.Json;
using DTSKD.Core;
using DTSKD.Core.Training;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// The files of a run: config.json, and, as a trainer callback, metrics.csv and the plots after every epoch, then
/// report.md at the end. Every file is written to a temporary name and renamed into place.
/// </summary>
public sealed class ExperimentOutputs(string directory, ExperimentConfig config) : TrainerCallback
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.KebabCaseLower };

    public static void WriteConfig(string directory, ExperimentConfig config) =>
        WriteText(Path.Combine(directory, "config.json"), JsonSerializer.Serialize(config, Json));

    /// <summary>skipped-images.txt: the images of a folder left out as unusable (--skip-bad-images), one per line with its reason; nothing when none was.</summary>
    public static void WriteSkipped(string directory, IReadOnlyList<Core.Images.BadImage> skipped)
    {
        ArgumentNullException.ThrowIfNull(skipped);
        if (skipped.Count > 0)
        {
            WriteText(Path.Combine(directory, "skipped-images.txt"), string.Concat(skipped.Select(b => $"{b.Path}\t{b.Reason}\n")));
        }
    }

    public static ExperimentConfig ReadConfig(string directory) =>
        JsonSerializer.Deserialize<ExperimentConfig>(File.ReadAllText(Path.Combine(directory, "config.json")), Json)
        ?? throw new InvalidDataException($"'{Path.Combine(directory, "config.json")}' is empty.");

    /// <inheritdoc />
    public override void OnEpochEnd(Trainer trainer, EpochMetrics metrics) => WriteEpochs(trainer.Metrics);

    /// <summary>metrics.csv and the three plots, from every epoch so far.</summary>
    public void WriteEpochs(IReadOnlyList<EpochMetrics> metrics)
    {
        EpochMetricsCsv.Write(Path.Combine(directory, "metrics.csv"), metrics);
        if (metrics.Count == 0)
        {
            return;
        }

        var epochs = metrics.Select(m => m.Epoch + 1.0).ToArray();
        var heads = metrics[^1].TestTop1.Count;
        Plot("accuracy.png", "Test top-1 per head", "top-1 (%)", epochs,
            [.. Enumerable.Range(0, heads).Select(h => (h == 0 ? "backbone" : $"branch {h}", metrics.Select(m => m.TestTop1[h]).ToArray()))]);
        Plot("loss.png", "Loss", "loss", epochs,
            [("train (total)", metrics.Select(m => m.TrainLoss).ToArray()), ("test (backbone CE)", metrics.Select(m => m.TestLoss).ToArray())]);
        var schedule = new List<(string, double[])> { ("learning rate", metrics.Select(m => m.LearningRate).ToArray()) };
        foreach (var name in metrics[^1].Scalars.Keys.Where(k => metrics.All(m => m.Scalars.ContainsKey(k))))
        {
            schedule.Add((name, metrics.Select(m => m.Scalars[name]).ToArray()));
        }

        Plot("schedule.png", "Learning rate and the objective's scalars", "value", epochs, [.. schedule]);
    }

    /// <summary>report.md: best (after --best-after) and final top-1 of every head, and the whole run's time.</summary>
    public void WriteReport(TrainingResult result, string device)
    {
        var m = result.Metrics;
        var heads = m.Count == 0 ? 0 : m[^1].TestTop1.Count;
        var bestAfter = config.ResolvedBestAfter;
        var after = m.Where(e => e.Epoch >= bestAfter).ToList();
        var seconds = m.Sum(e => e.EpochSeconds);
        var objective = Core.ObjectiveSpec.Parse(config.Objective);
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"# {config.ResolvedName}");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"{config.ClassifierType} on {config.DataType}, {m.Count} of {config.Epochs} epochs, seed {config.Seed}, device {device}, " +
                                                      $"objective `{objective.Text}` ({objective.Description}{(objective.Key.StartsWith("ce", StringComparison.Ordinal) ? "" : config.Hskd ? "" : "; --hskd 0: hard labels in place of the historical teacher")}). Wall time {TimeSpan.FromSeconds(seconds):hh\\:mm\\:ss} ({seconds:F0} s, every epoch's training and evaluation, resumed parts included).");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"| head | best top-1 over epochs {bestAfter + 1}-{config.Epochs} (%) | final top-1 (%) |");
        text.AppendLine("| --- | --- | --- |");
        for (var h = 0; h < heads; h++)
        {
            var best = after.Count == 0 ? "-" : after.Max(e => e.TestTop1[h]).ToString("F2", CultureInfo.InvariantCulture);
            text.AppendLine(CultureInfo.InvariantCulture, $"| {(h == 0 ? "backbone" : $"branch {h}")} | {best} | {m[^1].TestTop1[h]:F2} |");
        }

        if (m.Count > 0)
        {
            text.AppendLine();
            var best = result.BestEpoch is { } be ? $"Best backbone epoch: {be + 1}." : $"No epoch after the first {bestAfter} has run yet.";
            text.AppendLine(CultureInfo.InvariantCulture, $"Backbone top-5 at the final epoch: {m[^1].TestTop5:F2}%. {best}");
        }

        if (result.Cancelled)
        {
            text.AppendLine();
            text.AppendLine("The run was stopped before its last epoch; continue it with `--resume`.");
        }

        var files = RunFolder.RunFiles.Where(f => File.Exists(Path.Combine(directory, f)));
        text.AppendLine();
        text.AppendLine("Files: " + string.Join(", ", files.Select(f => $"`{f}`")) + ", `report.md`.");
        WriteText(Path.Combine(directory, "report.md"), text.ToString());
    }

    private void Plot(string file, string title, string yLabel, double[] xs, (string Label, double[] Ys)[] series)
    {
        var plot = new ScottPlot.Plot();
        foreach (var (label, ys) in series)
        {
            var line = plot.Add.Scatter(xs, ys);
            line.LegendText = label;
        }

        plot.Title(title);
        plot.XLabel("epoch");
        plot.YLabel(yLabel);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };

        // Outside the data area, so it never hides a curve.
        plot.ShowLegend(ScottPlot.Edge.Right);
        var png = plot.GetImageBytes(1000, 500, ScottPlot.ImageFormat.Png);
        AtomicFile.Write(Path.Combine(directory, file), stream => stream.Write(png));
    }

    private static void WriteText(string path, string text) => AtomicFile.WriteAllText(path, text);
}
