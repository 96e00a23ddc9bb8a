using DTSKD.Benchmarks.Study;
using DTSKD.Core;

namespace DTSKD.Benchmarks.Tests;

/// <summary>Where the method pays across budgets: the verdict against both baselines, and studies that cannot be compared.</summary>
public sealed class BudgetReportTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "dtskd-budget-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    private static BudgetReport.Budget Budget(int epochs, params (string Row, double[] Best)[] rows) =>
        new(epochs, rows.ToDictionary(r => r.Row, r => r.Best));

    [Fact]
    public void A_row_beyond_both_baselines_is_named_with_its_seeds()
    {
        BudgetReport.Verdicts([Budget(200, ("ce", [76.3, 76.5, 76.1]), ("ls", [77.0, 77.4, 76.9]), ("historical", [79.4, 79.0, 79.6]), ("dtskd", [78.0, 77.0, 79.9]))])
            .Should().Equal("200 epochs: `historical` beats cross-entropy and label smoothing beyond the seed spread, +3.03 from cross-entropy (spread 0.31) and +2.23 from label smoothing (spread 0.31), ahead of both in 3 of 3 seeds.");
    }

    [Fact]
    public void Ahead_of_cross_entropy_but_not_of_label_smoothing_is_no_win()
    {
        // The bar is both baselines: a gain that label smoothing gives for free is not the method's.
        BudgetReport.Verdicts([Budget(100, ("ce", [83.0, 83.2, 82.9]), ("ls", [84.5, 84.4, 84.6]), ("dtskd[t2=off]", [84.4, 84.6, 84.2]))])
            .Should().Equal("100 epochs: no distilling row beats cross-entropy and label smoothing beyond the seed spread; the closest, `dtskd[t2=off]`, is +1.37 from cross-entropy (spread 0.20) and -0.10 from label smoothing (spread 0.20), ahead of both in 1 of 3 seeds.");
    }

    [Fact]
    public void Without_a_label_smoothing_row_it_says_so_and_one_seed_makes_no_claim()
    {
        BudgetReport.Verdicts([Budget(40, ("ce", [83.0, 83.2, 82.9]), ("historical", [84.4, 84.6, 84.2])), Budget(100, ("ce", [83.0]), ("historical", [84.4]))])
            .Should().Equal(
                "40 epochs: `historical` beats cross-entropy beyond the seed spread, +1.37 from cross-entropy (spread 0.20), ahead of it in 3 of 3 seeds (no `ls` row: label smoothing was not measured).",
                "100 epochs: one seed, no spread known; no claim is made (no `ls` row: label smoothing was not measured).");
    }

    [Fact]
    public void The_report_pairs_seeds_across_budgets_and_refuses_studies_that_differ_in_more_than_epochs()
    {
        var short_ = Study(40, ["ce", "ls", "dtskd"], (row, seed) => row switch { "ce" => 80 + seed, "ls" => 80.5 + seed, _ => 60 + seed });
        var long_ = Study(200, ["ce", "ls", "dtskd"], (row, seed) => row switch { "ce" => 82 + seed, "ls" => 82.5 + seed, _ => 84 + seed });
        var output = Path.Combine(_root, "budget.md");
        var log = new StringWriter();

        BudgetReport.Write([long_, short_], output, log).Should().Be(0, log.ToString());

        var report = File.ReadAllText(output);
        report.Should().Contain("| row | 40 epochs | 200 epochs |", "budgets are ordered by epochs, whatever the order given");
        report.Should().Contain("| `dtskd` | -20.00 ± 0.00 (-20.00 / -20.00 / -20.00) | +2.00 ± 0.00 (+2.00 / +2.00 / +2.00) |");
        report.Should().Contain("| `dtskd` | -20.50 ± 0.00 (-20.50 / -20.50 / -20.50) | +1.50 ± 0.00 (+1.50 / +1.50 / +1.50) |", "the gain over label smoothing has its own table");
        report.Should().Contain("* 200 epochs: `dtskd` beats cross-entropy and label smoothing beyond the seed spread, +2.00 from cross-entropy (spread 1.00) and +1.50 from label smoothing (spread 1.00), ahead of both in 3 of 3 seeds.");
        report.Should().Contain("![gain over cross-entropy by budget](budget/gain-by-budget.png)");
        report.Should().Contain("Below the plot's range (-10 points): `dtskd` at 40 epochs, -20.00 ± 0.00.", "a collapsed row is named rather than squashing the plot");
        File.Exists(Path.Combine(_root, "budget", "gain-by-budget.png")).Should().BeTrue();

        var otherRows = Study(100, ["ce", "historical"], (_, seed) => 80 + seed);
        Refused([short_, otherRows]).Should().Be($"error: '{otherRows}' is not the study of '{short_}' at another budget: its data, model, rows, seeds or settings differ (only --epochs may).");
        var twice = Study(40, ["ce", "ls", "dtskd"], (_, seed) => 80 + seed, name: "again");
        Refused([short_, twice]).Should().Be($"error: '{twice}' and '{short_}' are both 40-epoch studies; give one folder per budget.");
        File.Delete(StudyRun.PathOf(long_, ObjectiveSpec.Parse("ls"), 2));
        Refused([short_, long_]).Should().Be($"error: '{long_}' lacks 1 of its 9 runs (ls seed 2); finish that study first.");
    }

    private string Refused(string[] folders)
    {
        var output = Path.Combine(_root, "refused.md");
        var log = new StringWriter();
        BudgetReport.Write(folders, output, log).Should().Be(1);
        File.Exists(output).Should().BeFalse("a refused report writes nothing");
        return log.ToString().TrimEnd();
    }

    private string Study(int epochs, string[] rows, Func<string, long, double> best, string? name = null)
    {
        var folder = Path.Combine(_root, name ?? $"runs-{epochs}");
        var settings = new StudySettings
        {
            DataType = "fashion-mnist", Epochs = epochs, TrainLimit = 1000, TestLimit = 1000, BatchSize = 128, Lr = 0.1,
            Model = "resnet18_dtskd", BaseWidth = 16, NeckWidth = 128, Precision = "bf16", Rows = rows, Seeds = [1, 2, 3], Device = "cpu",
        };
        settings.Claim(folder);
        foreach (var (row, seed) in settings.Runs)
        {
            new StudyRun { Row = row.Text, Seed = seed, Study = settings.Fingerprint, Epochs = [], BestTop1 = best(row.Text, seed) }.Write(folder, row);
        }

        return folder;
    }
}
