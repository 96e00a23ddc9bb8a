using System.Globalization;
using System.Text;

namespace DTSKD.Core.Training;

/// <summary>Writes epoch metrics as CSV, one row per epoch (invariant culture, written atomically).</summary>
public static class EpochMetricsCsv
{
    /// <summary>The CSV text: epoch (1-based), lr, the objective's scalars, train loss and components, train top-1, per-head test top-1, top-5, test loss, images/s, training and epoch seconds.</summary>
    /// <param name="metrics">The epochs, in order.</param>
    public static string Format(IReadOnlyList<EpochMetrics> metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var components = metrics.SelectMany(m => m.TrainComponents.Keys).Distinct().ToList();
        var scalars = metrics.SelectMany(m => m.Scalars.Keys).Distinct().ToList();
        var heads = metrics.Count == 0 ? 0 : metrics.Max(m => m.TestTop1.Count);
        var header = new List<string> { "epoch", "lr" };
        header.AddRange(scalars.Select(Column));
        header.Add("train_loss");
        header.AddRange(components.Select(c => "train_" + Column(c)));
        header.Add("train_top1");
        header.AddRange(Enumerable.Range(0, heads).Select(h => h == 0 ? "test_top1_backbone" : $"test_top1_branch{h}"));
        header.AddRange(["test_top5_backbone", "test_loss", "images_per_second", "train_seconds", "epoch_seconds"]);

        var text = new StringBuilder().AppendJoin(',', header).Append('\n');
        foreach (var m in metrics)
        {
            var row = new List<string> { (m.Epoch + 1).ToString(CultureInfo.InvariantCulture), F(m.LearningRate) };
            row.AddRange(scalars.Select(c => m.Scalars.TryGetValue(c, out var v) ? F(v) : string.Empty));
            row.Add(F(m.TrainLoss));
            row.AddRange(components.Select(c => m.TrainComponents.TryGetValue(c, out var v) ? F(v) : string.Empty));
            row.Add(F(m.TrainTop1));
            row.AddRange(Enumerable.Range(0, heads).Select(h => h < m.TestTop1.Count ? F(m.TestTop1[h]) : string.Empty));
            row.AddRange([F(m.TestTop5), F(m.TestLoss), F(m.ImagesPerSecond), F(m.TrainSeconds), F(m.EpochSeconds)]);
            text.AppendJoin(',', row).Append('\n');
        }

        return text.ToString();
    }

    /// <summary>Writes <see cref="Format"/>'s text to a file through a temporary file and a rename.</summary>
    /// <param name="path">The CSV file.</param>
    /// <param name="metrics">The epochs, in order.</param>
    /// <exception cref="IOException">The file could not be written; it is unchanged.</exception>
    public static void Write(string path, IReadOnlyList<EpochMetrics> metrics) => AtomicFile.WriteAllText(path, Format(metrics));

    private static string Column(string name) => name.Replace('/', '_').Replace(',', '_');

    private static string F(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
