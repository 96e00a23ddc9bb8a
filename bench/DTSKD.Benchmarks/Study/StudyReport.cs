using System.Globalization;
using System.Text;
using DTSKD.Core;
using DTSKD.Core.Training;

namespace DTSKD.Benchmarks.Study;

/// <summary>
/// A study's report from its runs folder: the table (means, standard deviations and per-seed values), the verdict against
/// cross-entropy, the per-epoch plot and every epoch as CSV. The same whether the runs came from one process or many.
/// </summary>
public static class StudyReport
{
    /// <summary>The line that starts the timings paragraph: everything from it on depends on the machine's speed.</summary>
    public const string TimingsMarker = "Timings:";

    /// <summary>Writes the report and its assets; returns the process exit code (1 with the missing runs named when the study is incomplete).</summary>
    public static int Merge(string runsFolder, string output, TextWriter log)
    {
        var settings = StudySettings.Read(runsFolder);
        var study = settings.Fingerprint;
        var runs = new List<(ObjectiveSpec Row, long Seed, StudyRun Run)>();
        var missing = new List<string>();
        foreach (var (row, seed) in settings.Runs)
        {
            if (StudyRun.TryRead(runsFolder, row, seed, study) is { } run)
            {
                runs.Add((row, seed, run));
            }
            else
            {
                missing.Add($"{row.Text} seed {seed}");
            }
        }

        if (missing.Count > 0)
        {
            log.WriteLine($"error: '{runsFolder}' lacks {missing.Count} of the study's {settings.Runs.Count} runs: {string.Join(", ", missing)}. Run the missing shards (finished runs are skipped), then merge again.");
            return 1;
        }

        Write(settings, runs, Path.GetFullPath(output), log);
        return 0;
    }

    /// <summary>The verdict: whether the best row beats cross-entropy by more than the seed spread.</summary>
    public static string Verdict(IReadOnlyList<(string Row, IReadOnlyList<double> Best)> rows)
    {
        var inv = CultureInfo.InvariantCulture;
        var ce = rows.FirstOrDefault(r => r.Row == "ce");
        var others = rows.Where(r => r.Row != "ce").ToList();
        if (ce.Row is null || others.Count == 0)
        {
            return "Verdict: none (the study needs a `ce` row and at least one other to compare).";
        }

        var best = others.MaxBy(r => r.Best.Average());
        var gain = best.Best.Average() - ce.Best.Average();
        if (ce.Best.Count < 2 || best.Best.Count < 2)
        {
            return string.Create(inv, $"Verdict: `{best.Row}` is {gain:+0.00;-0.00} points from cross-entropy with one seed; no seed spread is known, so no claim is made (run with --seeds 1,2,3).");
        }

        var spread = Math.Max(StandardDeviation(best.Best), StandardDeviation(ce.Best));
        var beyond = Math.Abs(gain) > spread;
        // Each seed's two runs share initial weights and batches, so the per-seed comparison is the sharper one.
        var perSeed = best.Best.Count == ce.Best.Count
            ? string.Create(inv, $" Per seed, `{best.Row}` is ahead in {best.Best.Zip(ce.Best).Count(p => p.First > p.Second)} of {ce.Best.Count}.")
            : "";
        return (gain > 0 && beyond
            ? string.Create(inv, $"Verdict: `{best.Row}` beats cross-entropy by {gain:F2} points (best backbone top-1, mean of {best.Best.Count} seeds), more than the seed spread ({spread:F2}).")
            : gain < 0 && beyond
                ? string.Create(inv, $"Verdict: every row is below cross-entropy; the best, `{best.Row}`, by {-gain:F2} points, more than the seed spread ({spread:F2}). Train with cross-entropy on this data.")
                : string.Create(inv, $"Verdict: no row beats cross-entropy beyond the seed spread: the best, `{best.Row}`, is {gain:+0.00;-0.00} points from it with a spread of {spread:F2}."))
            + perSeed;
    }

    private static double StandardDeviation(IReadOnlyList<double> v)
    {
        var mean = v.Average();
        return Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Count - 1));
    }

    private static string MeanSpread(IReadOnlyList<double> v) =>
        v.Count == 1 ? v[0].ToString("F2", CultureInfo.InvariantCulture) : string.Create(CultureInfo.InvariantCulture, $"{v.Average():F2} ± {StandardDeviation(v):F2}");

    private static void Write(StudySettings s, List<(ObjectiveSpec Row, long Seed, StudyRun Run)> runs, string output, TextWriter log)
    {
        var inv = CultureInfo.InvariantCulture;
        var assets = Path.Combine(Path.GetDirectoryName(output)!, Path.GetFileNameWithoutExtension(output));
        Directory.CreateDirectory(assets);
        var assetsName = Path.GetFileName(assets);
        var heads = runs[0].Run.Epochs[0].TestTop1.Count;
        var rows = s.Objectives;

        // Every epoch of every run, for anyone who wants to plot it differently; only the last column is a timing.
        var csv = new StringBuilder("row,seed,epoch,lr,train_loss,train_top1," + string.Join(",", Enumerable.Range(0, heads).Select(h => h == 0 ? "test_top1_backbone" : $"test_top1_branch{h}")) + ",test_top5_backbone,seconds\n");
        foreach (var (row, seed, run) in runs)
        {
            foreach (var m in run.Epochs)
            {
                csv.AppendLine(string.Create(inv, $"\"{row.Text}\",{seed},{m.Epoch + 1},{m.LearningRate},{m.TrainLoss:R},{m.TrainTop1:R},{string.Join(",", m.TestTop1.Select(t => t.ToString("R", inv)))},{m.TestTop5:R},{m.TrainSeconds:F1}"));
            }
        }

        AtomicFile.WriteAllText(Path.Combine(assets, "ablation.csv"), csv.ToString());

#if !NO_PLOTS
        var plot = new ScottPlot.Plot();
        double[] epochs = [.. Enumerable.Range(1, s.Epochs).Select(e => (double)e)];
        foreach (var row in rows)
        {
            var of = runs.Where(r => r.Row.Text == row.Text).ToList();
            double[] mean = [.. Enumerable.Range(0, s.Epochs).Select(e => of.Average(r => r.Run.Epochs[e].TestTop1[0]))];
            plot.Add.Scatter(epochs, mean).LegendText = row.Text;
        }

        plot.Title($"Backbone test top-1 (mean of {s.Seeds.Length} seeds)");
        plot.XLabel("epoch");
        plot.YLabel("top-1 (%)");
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        plot.ShowLegend(ScottPlot.Edge.Right);
        var png = Path.Combine(assets, "ablation-backbone.png");
        plot.SavePng(png + ".tmp", 1000, 550);
        File.Move(png + ".tmp", png, overwrite: true);
#endif

        var bestAfter = TrainerOptions.LastThirdStart(s.Epochs);
        var milestones = TrainerOptions.ScaledMilestones(s.Epochs);
        var recipe = new TrainerOptions();
        var first = runs[0].Run;
        var spreadNote = s.Seeds.Length > 1 ? "Mean ± standard deviation over seeds; the seeds' own values follow." : "One seed per row: no spread is known.";
        var noise = s.LabelNoise > 0
            ? string.Create(inv, $" Label noise: {s.LabelNoise * 100:0.#}% of the training labels replaced by another class (symmetric, seed {s.LabelNoiseSeed}, the same labels for every row and seed); test labels untouched.")
            : "";
        var counts = first.TrainCount is { } trained && first.TestCount is { } tested ? $" ({trained} training, {tested} test images)" : "";
        var data = s.DataType == "folder" ? $"the image folder '{s.DataPath}'{counts} at {s.ImageSize ?? 32} pixels, {s.Channels} channel{(s.Channels == 1 ? "" : "s")}" : s.DataType;
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"# {s.Title}");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"{Network(s)} on {data}{(s.TrainLimit is { } tl ? $" (first {tl} training images" + (s.TestLimit is { } el ? $", first {el} test images)" : ")") : s.TestLimit is { } el2 ? $" (first {el2} test images)" : "")}, " +
            $"{s.Epochs} epochs per run, batch {s.BatchSize}, {s.Precision}, SGD lr {s.Lr.ToString(inv)} (Nesterov {recipe.Momentum.ToString(inv)}, weight decay {(s.WeightDecay ?? recipe.WeightDecay).ToString(inv)}) x{recipe.Gamma.ToString(inv)} at epoch{(milestones.Distinct().Count() == 1 ? "" : "s")} {string.Join(" and ", milestones.GroupBy(m => m).Select(g => g.Count() == 1 ? $"{g.Key + 1}" : $"{g.Key + 1} ({g.Count()} times)"))}; " +
            $"the same budget, seeds ({string.Join(", ", s.Seeds)}) and initialisations for every row.{noise} " +
            $"Best = best backbone test top-1 over epochs {bestAfter + 1}-{s.Epochs} (the recipe's \"last third\"); final = last epoch; train = the last epoch's backbone top-1 on the augmented training batches. {spreadNote}");
        text.AppendLine();
        text.Append("| row | objective | backbone best | per seed | backbone final | train (final) |");
        text.AppendLine(string.Concat(Enumerable.Range(1, heads - 1).Select(h => $" branch {h} final |")));
        text.AppendLine("| --- | --- | --- | --- | --- | --- |" + string.Concat(Enumerable.Repeat(" --- |", heads - 1)));
        var bests = new List<(string, IReadOnlyList<double>)>();
        foreach (var row in rows)
        {
            var of = runs.Where(r => r.Row.Text == row.Text).Select(r => r.Run).ToList();
            IReadOnlyList<double> best = [.. of.Select(r => r.BestTop1 ?? double.NaN)];
            bests.Add((row.Text, best));
            var finals = Enumerable.Range(0, heads).Select(h => MeanSpread([.. of.Select(r => r.Epochs[^1].TestTop1[h])])).ToList();
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| `{row.Text}` | {row.Description} | {MeanSpread(best)} | {string.Join(" / ", best.Select(b => b.ToString("F2", inv)))} | {finals[0]} | {MeanSpread([.. of.Select(r => r.Epochs[^1].TrainTop1)])} |{string.Concat(finals.Skip(1).Select(f => $" {f} |"))}");
        }

        text.AppendLine();
        text.AppendLine(Verdict(bests));
        text.AppendLine();
#if !NO_PLOTS
        text.AppendLine(CultureInfo.InvariantCulture, $"![Backbone test top-1 per epoch]({assetsName}/ablation-backbone.png)");
        text.AppendLine();
#endif
        text.AppendLine(CultureInfo.InvariantCulture, $"Every epoch of every run: [{assetsName}/ablation.csv]({assetsName}/ablation.csv).");
        text.AppendLine();
        text.AppendLine("## How it was made");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"    {s.Command}");
        text.AppendLine();
        var machines = runs.Select(r => r.Run.Machine).Distinct().ToList();
        text.AppendLine(CultureInfo.InvariantCulture, $"on {string.Join("; and on ", machines)}.");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"{TimingsMarker} {runs.Count} runs, {runs.Sum(r => r.Run.Seconds) / 60:F1} minutes of training ({runs.Average(r => r.Run.Seconds):F0} s a run), merged {DateTime.UtcNow:yyyy-MM-dd}.");
        AtomicFile.WriteAllText(output, text.ToString());
        log.WriteLine($"Wrote {output} and {assets}/");
    }

    /// <summary>The network of the study's runs: a built-in one at its widths, or the pretrained file with its fine-tuning.</summary>
    private static string Network(StudySettings s)
    {
        var inv = CultureInfo.InvariantCulture;
        if (s.Pretrained is null)
        {
            return $"`{s.Model}` at width {s.BaseWidth}/{s.NeckWidth}{(s.Stem == "imagenet" ? " with the ImageNet stem" : "")}";
        }

        var factor = s.BackboneLrFactor ?? DTSKD.Core.Training.FineTuning.RecipeBackboneFactor;
        var warmup = s.WarmupEpochs ?? DTSKD.Core.Training.FineTuning.RecipeWarmupEpochs;
        return $"`{s.Model}` pretrained (`{s.Pretrained}`), neck {s.NeckWidth}, fine-tuned: backbone at {factor.ToString(inv)} of the rate, {warmup} warm-up epoch{(warmup == 1 ? "" : "s")}, " +
               $"frozen through {s.Freeze ?? "none"}{(s.FreezeBn ? ", batch norms frozen" : "")}{(s.DetachBranches ? ", branches detached from the backbone" : "")}{(s.BranchPoints is { Length: > 0 } p ? $", branches at {string.Join(", ", p)}" : "")},";
    }
}
