using System.Globalization;
using System.Text;
using DTSKD.Core;

namespace DTSKD.Benchmarks.Study;

/// <summary>
/// Several studies of one data set at different training budgets (each its own runs folder, the same rows and seeds):
/// each row's gain over cross-entropy per budget, paired by seed (both runs share initial weights and batches), as a
/// table and a plot with the seed spreads. Where the method pays shows as a gain beyond its spread.
/// </summary>
public static class BudgetReport
{
    /// <summary>Writes the report and its plot; exit code 0, or 1 with what is missing.</summary>
    public static int Write(IReadOnlyList<string> runsFolders, string output, TextWriter log)
    {
        var inv = CultureInfo.InvariantCulture;
        var studies = new List<(StudySettings Settings, Dictionary<(string Row, long Seed), double> Best)>();
        foreach (var folder in runsFolders)
        {
            var settings = StudySettings.Read(folder);
            var best = new Dictionary<(string, long), double>();
            var missing = new List<string>();
            foreach (var (row, seed) in settings.Runs)
            {
                if (StudyRun.TryRead(folder, row, seed, settings.Fingerprint) is { BestTop1: { } top1 })
                {
                    best[(row.Text, seed)] = top1;
                }
                else
                {
                    missing.Add($"{row.Text} seed {seed}");
                }
            }

            if (missing.Count > 0)
            {
                log.WriteLine($"error: '{folder}' lacks {missing.Count} of its {settings.Runs.Count} runs ({string.Join(", ", missing)}); finish that study first.");
                return 1;
            }

            if (!settings.Rows.Contains("ce"))
            {
                log.WriteLine($"error: '{folder}' has no ce row to measure gains from.");
                return 1;
            }

            studies.Add((settings, best));
        }

        studies.Sort((a, b) => a.Settings.Epochs.CompareTo(b.Settings.Epochs));
        var rows = studies[0].Settings.Rows.Where(r => r != "ce").ToList();
        var text = new StringBuilder();
        text.AppendLine("# Where the method pays: gain over cross-entropy against the training budget");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Each cell: the row's best backbone top-1 of the last third minus cross-entropy's, per seed (each seed's two runs share initial weights and batches), mean ± standard deviation over {studies[0].Settings.Seeds.Length} seeds; the seeds' own gains follow. Cross-entropy's own top-1 in the first row. Studies: {string.Join(", ", runsFolders.Select(f => $"`{f}`"))}.");
        text.AppendLine();
        text.AppendLine("| row | " + string.Join(" | ", studies.Select(s => $"{s.Settings.Epochs} epochs")) + " |");
        text.AppendLine("| --- |" + string.Concat(studies.Select(_ => " --- |")));
        text.AppendLine("| `ce` (top-1) | " + string.Join(" | ", studies.Select(s => MeanSpread([.. s.Settings.Seeds.Select(seed => s.Best[("ce", seed)])]))) + " |");
        var gains = new Dictionary<string, List<double[]>>();
        foreach (var row in rows)
        {
            gains[row] = [.. studies.Select(s => s.Settings.Seeds.Select(seed => s.Best[(row, seed)] - s.Best[("ce", seed)]).ToArray())];
            text.AppendLine($"| `{row}` | " + string.Join(" | ", gains[row].Select(g => $"{Signed(g.Average())} ± {Spread(g):F2} ({string.Join(" / ", g.Select(Signed))})")) + " |");
        }

        text.AppendLine();
        foreach (var (settings, best) in studies)
        {
            var ce = settings.Seeds.Select(seed => best[("ce", seed)]).ToArray();
            var beyond = rows.Select(r => (Row: r, Gain: gains[r][studies.FindIndex(s => s.Settings == settings)])).Where(r => r.Gain.Average() > Math.Max(Spread(r.Gain), 0) && r.Gain.All(g => g > 0)).ToList();
            var verdict = beyond.Count == 0
                ? "no row is ahead of cross-entropy in every seed by more than its spread."
                : string.Join("; ", beyond.Select(b => $"`{b.Row}` is ahead in every seed, {Signed(b.Gain.Average())} ± {Spread(b.Gain).ToString("F2", inv)}")) + ".";
            text.AppendLine(CultureInfo.InvariantCulture, $"* {settings.Epochs} epochs: {verdict}");
        }

#if !NO_PLOTS
        var plot = new ScottPlot.Plot();
        double[] budgets = [.. studies.Select(s => (double)s.Settings.Epochs)];
        foreach (var row in rows)
        {
            var line = plot.Add.ScatterLine(budgets, [.. gains[row].Select(g => g.Average())]);
            line.LegendText = row;
            var bars = plot.Add.ErrorBar(budgets, [.. gains[row].Select(g => g.Average())], [.. gains[row].Select(Spread)]);
            bars.Color = line.Color;
        }

        plot.Add.HorizontalLine(0, 1, ScottPlot.Colors.Gray, ScottPlot.LinePattern.Dashed);
        plot.Title("Gain over cross-entropy (best backbone top-1), mean ± sd over seeds");
        plot.XLabel("epochs");
        plot.YLabel("points");
        plot.ShowLegend(ScottPlot.Edge.Right);
        var assets = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(output))!, Path.GetFileNameWithoutExtension(output));
        Directory.CreateDirectory(assets);
        var png = Path.Combine(assets, "gain-by-budget.png");
        plot.SavePng(png + ".tmp", 1000, 550);
        File.Move(png + ".tmp", png, overwrite: true);
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"![gain over cross-entropy by budget]({Path.GetFileName(assets)}/gain-by-budget.png)");
#endif
        AtomicFile.WriteAllText(output, text.ToString());
        log.WriteLine($"Wrote {output}");
        return 0;

        static string Signed(double v) => v.ToString("+0.00;-0.00", CultureInfo.InvariantCulture);
        static double Spread(double[] v) => v.Length < 2 ? 0 : Math.Sqrt(v.Sum(x => (x - v.Average()) * (x - v.Average())) / (v.Length - 1));
        static string MeanSpread(double[] v) => string.Create(CultureInfo.InvariantCulture, $"{v.Average():F2} ± {Spread(v):F2}");
    }
}
