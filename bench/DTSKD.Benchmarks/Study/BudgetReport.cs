using System.Globalization;
using System.Text;
using DTSKD.Core;

namespace DTSKD.Benchmarks.Study;

/// <summary>
/// Several studies of one data set at different training budgets (each its own runs folder; the same data, model, rows
/// and seeds, only the epochs differ): every row's top-1 and its gain over cross-entropy and over label smoothing per
/// budget, paired by seed (each seed's runs share initial weights and batches), as tables, a verdict per budget and a
/// plot with the seed spreads. Where the method pays shows as a gain over both baselines beyond their spreads.
/// </summary>
public static class BudgetReport
{
    /// <summary>Gains below this many points are named under the plot rather than stretching its scale.</summary>
    private const double PlotFloor = -10;

    private static readonly string[] Baselines = ["ce", "ls"];

    /// <summary>Writes the report and its plot; exit code 0, or 1 with what is missing or does not match.</summary>
    public static int Write(IReadOnlyList<string> runsFolders, string output, TextWriter log)
    {
        var studies = new List<(string Folder, StudySettings Settings, Dictionary<string, double[]> Best)>();
        foreach (var folder in runsFolders)
        {
            var settings = StudySettings.Read(folder);
            var best = new Dictionary<string, double[]>();
            var missing = new List<string>();
            foreach (var row in settings.Objectives)
            {
                best[row.Text] = [.. settings.Seeds.Select(seed =>
                {
                    if (StudyRun.TryRead(folder, row, seed, settings.Fingerprint) is { BestTop1: { } top1 })
                    {
                        return top1;
                    }

                    missing.Add($"{row.Text} seed {seed}");
                    return double.NaN;
                })];
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

            // Only the budget may differ: a gain read across budgets is otherwise a gain across data, model or rows.
            var (firstFolder, firstSettings) = studies.Count > 0 ? (studies[0].Folder, studies[0].Settings) : (folder, settings);
            if ((settings with { Epochs = 0 }).Fingerprint != (firstSettings with { Epochs = 0 }).Fingerprint)
            {
                log.WriteLine($"error: '{folder}' is not the study of '{firstFolder}' at another budget: its data, model, rows, seeds or settings differ (only --epochs may).");
                return 1;
            }

            if (studies.FirstOrDefault(s => s.Settings.Epochs == settings.Epochs) is { Folder: { } same })
            {
                log.WriteLine($"error: '{folder}' and '{same}' are both {settings.Epochs}-epoch studies; give one folder per budget.");
                return 1;
            }

            studies.Add((folder, settings, best));
        }

        studies.Sort((a, b) => a.Settings.Epochs.CompareTo(b.Settings.Epochs));
        var budgets = studies.Select(s => new Budget(s.Settings.Epochs, s.Best)).ToList();
        var rows = studies[0].Settings.Rows;
        var text = new StringBuilder();
        text.AppendLine("# Where the method pays: gain over cross-entropy and label smoothing against the training budget");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"The same data, model, rows and {studies[0].Settings.Seeds.Length} seeds ({string.Join(", ", studies[0].Settings.Seeds)}) at {studies.Count} budgets; each budget's learning-rate milestones are the recipe's, scaled to it. Top-1 is each run's best backbone test top-1 of its last third (as in each study's report), mean ± standard deviation over seeds, the seeds' own values in brackets. Studies: {string.Join(", ", studies.Select(s => $"`{s.Folder}`"))}.");
        text.AppendLine();
        text.AppendLine("## Top-1");
        text.AppendLine();
        Table(text, budgets, rows, row => b => Cell(b.Best[row], "F2"));
        foreach (var baseline in Baselines.Where(rows.Contains))
        {
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"## Gain over {Name(baseline)}");
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"Per seed, the row's top-1 minus `{baseline}`'s of the same seed; mean ± standard deviation of those gains.");
            text.AppendLine();
            Table(text, budgets, [.. rows.Where(r => r != baseline && r != "ce")], row => b => Cell(Gains(b, row, baseline), "+0.00;-0.00"));
        }

        text.AppendLine();
        text.AppendLine("## Verdict per budget");
        text.AppendLine();
        foreach (var line in Verdicts(budgets))
        {
            text.AppendLine("* " + line);
        }

#if !NO_PLOTS
        var off = Plot(budgets, [.. rows.Where(r => r != "ce")], output);
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"![gain over cross-entropy by budget]({Path.GetFileNameWithoutExtension(output)}/gain-by-budget.png)");
        if (off.Count > 0)
        {
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"Below the plot's range ({PlotFloor.ToString(CultureInfo.InvariantCulture)} points): {string.Join("; ", off)}.");
        }
#endif
        AtomicFile.WriteAllText(output, text.ToString());
        log.WriteLine($"Wrote {output}");
        return 0;
    }

    /// <summary>One budget's best backbone top-1 per row, in seed order.</summary>
    /// <param name="Epochs">The budget.</param>
    /// <param name="Best">Row text to the seeds' top-1, every row in the same seed order.</param>
    public sealed record Budget(int Epochs, IReadOnlyDictionary<string, double[]> Best);

    /// <summary>
    /// One line per budget: the distilling row (neither <c>ce</c> nor <c>ls</c>) that beats both baselines by more than
    /// the larger of the two rows' seed spreads (each study's own rule), or, where none does, the best one's distance
    /// from each baseline; with the seeds in which it is ahead of both.
    /// </summary>
    public static IReadOnlyList<string> Verdicts(IReadOnlyList<Budget> budgets)
    {
        var inv = CultureInfo.InvariantCulture;
        var lines = new List<string>();
        foreach (var budget in budgets)
        {
            var baselines = Baselines.Where(budget.Best.ContainsKey).ToList();
            var candidates = budget.Best.Keys.Where(r => !baselines.Contains(r)).ToList();
            if (!baselines.Contains("ce") || candidates.Count == 0)
            {
                lines.Add(string.Create(inv, $"{budget.Epochs} epochs: no verdict (it needs a `ce` row and a distilling row)."));
                continue;
            }

            var seeds = budget.Best["ce"].Length;
            var against = string.Join(" and ", baselines.Select(Name));
            var withoutLs = baselines.Contains("ls") ? "" : " (no `ls` row: label smoothing was not measured)";
            if (seeds < 2)
            {
                lines.Add(string.Create(inv, $"{budget.Epochs} epochs: one seed, no spread known; no claim is made{withoutLs}."));
                continue;
            }

            (double Gain, double Spread) Versus(string row, string baseline) =>
                (budget.Best[row].Average() - budget.Best[baseline].Average(), Math.Max(Sd(budget.Best[row]), Sd(budget.Best[baseline])));
            int AheadOfAll(string row) => Enumerable.Range(0, seeds).Count(i => baselines.All(b => budget.Best[row][i] > budget.Best[b][i]));
            string Distances(string row) => string.Join(" and ", baselines.Select(b => Versus(row, b)).Zip(baselines, (v, b) =>
                string.Create(inv, $"{v.Gain:+0.00;-0.00} from {Name(b)} (spread {v.Spread:F2})")));

            var winners = candidates.Where(r => baselines.All(b => Versus(r, b) is var v && v.Gain > v.Spread))
                .OrderByDescending(r => baselines.Min(b => Versus(r, b).Gain)).ToList();
            if (winners.Count > 0)
            {
                lines.Add(string.Create(inv, $"{budget.Epochs} epochs: {string.Join("; ", winners.Select(w => $"`{w}` beats {against} beyond the seed spread, {Distances(w)}, ahead of {(baselines.Count > 1 ? "both" : "it")} in {AheadOfAll(w)} of {seeds} seeds"))}{withoutLs}."));
            }
            else
            {
                var best = candidates.MaxBy(r => baselines.Min(b => Versus(r, b).Gain))!;
                lines.Add(string.Create(inv, $"{budget.Epochs} epochs: no distilling row beats {against} beyond the seed spread; the closest, `{best}`, is {Distances(best)}, ahead of {(baselines.Count > 1 ? "both" : "it")} in {AheadOfAll(best)} of {seeds} seeds{withoutLs}."));
            }
        }

        return lines;
    }

    private static void Table(StringBuilder text, IReadOnlyList<Budget> budgets, IReadOnlyList<string> rows, Func<string, Func<Budget, string>> cell)
    {
        text.AppendLine("| row | " + string.Join(" | ", budgets.Select(b => $"{b.Epochs} epochs")) + " |");
        text.AppendLine("| --- |" + string.Concat(budgets.Select(_ => " --- |")));
        foreach (var row in rows)
        {
            text.AppendLine($"| `{row}` | " + string.Join(" | ", budgets.Select(cell(row))) + " |");
        }
    }

    private static double[] Gains(Budget budget, string row, string baseline) =>
        [.. budget.Best[row].Zip(budget.Best[baseline], (r, b) => r - b)];

    private static string Cell(double[] values, string format)
    {
        string F(double v) => v.ToString(format, CultureInfo.InvariantCulture);
        return string.Create(CultureInfo.InvariantCulture, $"{F(values.Average())} ± {Sd(values):F2} ({string.Join(" / ", values.Select(F))})");
    }

    private static string Name(string baseline) => baseline == "ce" ? "cross-entropy" : "label smoothing";

    private static double Sd(double[] v) => v.Length < 2 ? 0 : Math.Sqrt(v.Sum(x => (x - v.Average()) * (x - v.Average())) / (v.Length - 1));

#if !NO_PLOTS
    /// <summary>Draws each row's gain over cross-entropy per budget with its spread; returns the points left below the range.</summary>
    private static List<string> Plot(List<Budget> budgets, IReadOnlyList<string> rows, string output)
    {
        var inv = CultureInfo.InvariantCulture;
        var plot = new ScottPlot.Plot();
        double[] epochs = [.. budgets.Select(b => (double)b.Epochs)];
        var off = new List<string>();
        double low = -1, high = 1;
        var span = Math.Max(epochs[^1] - epochs[0], 10);
        for (var r = 0; r < rows.Count; r++)
        {
            var row = rows[r];
            var gains = budgets.Select(b => Gains(b, row, "ce")).ToList();
            double[] means = [.. gains.Select(g => g.Average())];
            double[] spreads = [.. gains.Select(Sd)];
            // Each row a little to the side of the budget, so that error bars of one budget do not hide each other.
            double[] xs = [.. epochs.Select(e => e + ((r - ((rows.Count - 1) / 2.0)) * span * 0.012))];
            var line = plot.Add.ScatterLine(xs, means);
            line.LegendText = row;
            line.MarkerSize = 6;
            var bars = plot.Add.ErrorBar(xs, means, spreads);
            bars.Color = line.Color;
            for (var i = 0; i < budgets.Count; i++)
            {
                // A collapsed row would squash every other row into a line at zero.
                if (means[i] < PlotFloor)
                {
                    off.Add(string.Create(inv, $"`{row}` at {budgets[i].Epochs} epochs, {means[i]:+0.00;-0.00} ± {spreads[i]:F2}"));
                    continue;
                }

                low = Math.Min(low, means[i] - spreads[i]);
                high = Math.Max(high, means[i] + spreads[i]);
            }
        }

        plot.Add.HorizontalLine(0, 1, ScottPlot.Colors.Gray, ScottPlot.LinePattern.Dashed);
        plot.Axes.SetLimitsY(low - 0.5, high + 0.5);
        var margin = Math.Max(5, (epochs[^1] - epochs[0]) * 0.05);
        plot.Axes.SetLimitsX(epochs[0] - margin, epochs[^1] + margin);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(epochs, [.. budgets.Select(b => b.Epochs.ToString(inv))]);
        plot.Title("Gain over cross-entropy (best backbone top-1), mean ± sd of the per-seed gains");
        plot.XLabel("epochs");
        plot.YLabel("points");
        plot.ShowLegend(ScottPlot.Edge.Right);
        var assets = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(output))!, Path.GetFileNameWithoutExtension(output));
        Directory.CreateDirectory(assets);
        var png = Path.Combine(assets, "gain-by-budget.png");
        plot.SavePng(png + ".tmp", 1000, 550);
        File.Move(png + ".tmp", png, overwrite: true);
        return off;
    }
#endif
}
