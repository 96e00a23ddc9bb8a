using System.Globalization;
using System.Text;
using System.Text.Json;
using DTSKD.Core.Training;

namespace DTSKD.Samples.Cifar100;

/// <summary>Writes a run's files: config.json, metrics.csv, the plots and report.md (each atomically).</summary>
public static class ExperimentOutputs
{
    private static readonly string[] RunFiles = ["config.json", "metrics.csv", "accuracy.png", "loss.png", "schedule.png", "last.ckpt", "best.ckpt", "train.log"];

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.KebabCaseLower };

    public static void WriteConfig(string directory, ExperimentConfig config) =>
        WriteText(Path.Combine(directory, "config.json"), JsonSerializer.Serialize(config, Json));

    public static ExperimentConfig ReadConfig(string directory) =>
        JsonSerializer.Deserialize<ExperimentConfig>(File.ReadAllText(Path.Combine(directory, "config.json")), Json)
        ?? throw new InvalidDataException($"'{Path.Combine(directory, "config.json")}' is empty.");

    public static void WriteEpoch(string directory, IReadOnlyList<EpochMetrics> metrics)
    {
        EpochMetricsCsv.Write(Path.Combine(directory, "metrics.csv"), metrics);
        if (metrics.Count == 0)
        {
            return;
        }

        var epochs = metrics.Select(m => m.Epoch + 1.0).ToArray();
        var heads = metrics[^1].TestTop1.Count;
        Plot(Path.Combine(directory, "accuracy.png"), "Test top-1 per head", "top-1 (%)", epochs,
            Enumerable.Range(0, heads).Select(h => (h == 0 ? "backbone" : $"branch {h}", metrics.Select(m => m.TestTop1[h]).ToArray())).ToArray());
        Plot(Path.Combine(directory, "loss.png"), "Loss", "loss", epochs,
            [("train (total)", metrics.Select(m => m.TrainLoss).ToArray()), ("test (backbone CE)", metrics.Select(m => m.TestLoss).ToArray())]);
        var schedule = new List<(string, double[])> { ("learning rate", metrics.Select(m => m.LearningRate).ToArray()) };
        if (metrics.All(m => m.Alpha is not null))
        {
            schedule.Add(("alpha_t", metrics.Select(m => m.Alpha!.Value).ToArray()));
        }

        Plot(Path.Combine(directory, "schedule.png"), "Learning rate and alpha_t", "value", epochs, [.. schedule]);
    }

    public static void WriteReport(string directory, ExperimentConfig config, TrainingResult result, TimeSpan wallTime, string device)
    {
        var m = result.Metrics;
        var heads = m.Count == 0 ? 0 : m[^1].TestTop1.Count;
        var after = m.Where(e => e.Epoch >= config.BestAfter).ToList();
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"# {config.ResolvedName}");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"{config.ClassifierType} on {config.DataType}, {m.Count} of {config.Epochs} epochs, seed {config.Seed}, device {device}, " +
                                                      $"historical teacher {(config.Hskd ? "on" : "off")}. Wall time {wallTime:hh\\:mm\\:ss} ({wallTime.TotalSeconds:F0} s).");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"| head | best top-1 over epochs >= {config.BestAfter + 1} (%) | final top-1 (%) |");
        text.AppendLine("| --- | --- | --- |");
        for (var h = 0; h < heads; h++)
        {
            var best = after.Count == 0 ? "-" : after.Max(e => e.TestTop1[h]).ToString("F2", CultureInfo.InvariantCulture);
            text.AppendLine(CultureInfo.InvariantCulture, $"| {(h == 0 ? "backbone" : $"branch {h}")} | {best} | {m[^1].TestTop1[h]:F2} |");
        }

        if (m.Count > 0)
        {
            text.AppendLine();
            var best = result.BestEpoch is { } be ? $"Best backbone epoch: {be + 1}." : $"No epoch reached --best-after {config.BestAfter}.";
            text.AppendLine(CultureInfo.InvariantCulture, $"Backbone top-5 at the final epoch: {m[^1].TestTop5:F2}%. {best}");
        }

        if (result.Cancelled)
        {
            text.AppendLine();
            text.AppendLine("The run was stopped before its last epoch; continue it with `--resume`.");
        }

        var files = RunFiles.Where(f => File.Exists(Path.Combine(directory, f)));
        text.AppendLine();
        text.AppendLine("Files: " + string.Join(", ", files.Select(f => $"`{f}`")) + ", `report.md`.");
        WriteText(Path.Combine(directory, "report.md"), text.ToString());
    }

    private static void Plot(string path, string title, string yLabel, double[] xs, (string Label, double[] Ys)[] series)
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
        plot.ShowLegend();
        var temp = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileNameWithoutExtension(path)}.tmp.png");
        plot.SavePng(temp, 900, 500);
        File.Move(temp, path, overwrite: true);
    }

    private static void WriteText(string path, string text)
    {
        var temp = path + ".tmp";
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
    }
}
