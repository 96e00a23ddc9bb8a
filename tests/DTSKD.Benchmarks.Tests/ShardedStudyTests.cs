using System.Diagnostics;
using DTSKD.Benchmarks.Study;

namespace DTSKD.Benchmarks.Tests;

/// <summary>A study fanned out over processes gives the report of one process, whatever stops a shard on the way.</summary>
public sealed class ShardedStudyTests : IDisposable
{
    private const string FashionMnist = "/usr/share/datasets/fashion-mnist";
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-study-");

    public void Dispose() => _dir.Delete(recursive: true);

    // Four runs of a few seconds: two rows, two seeds, 96 real Fashion-MNIST images, two epochs, a narrow network.
    private static readonly string[] Study =
    [
        "ablation", "--device", "cpu", "--train-limit", "96", "--test-limit", "64", "--epochs", "2", "--batch-size", "32",
        "--base-width", "16", "--neck-width", "16", "--rows", "ce,dtskd[t2=off]", "--seeds", "1,2", "--label-noise", "0.25",
    ];

    private static Process Start(IEnumerable<string> args) => BenchProcess.Start(args);

    private static Task<(int Code, string Output)> Run(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null) =>
        BenchProcess.Run(args, environment);

    private string[] Study_(string name, params string[] more) =>
        [.. Study, "--output", Path.Combine(_dir.FullName, name, "report.md"), "--runs-dir", Path.Combine(_dir.FullName, name, "runs"), .. more];

    /// <summary>The report without its timings paragraph and with the study's folder named alike, and the CSV without its seconds column.</summary>
    private (string Report, string Csv) Results(string name)
    {
        var report = File.ReadAllText(Path.Combine(_dir.FullName, name, "report.md"));
        var csv = File.ReadAllLines(Path.Combine(_dir.FullName, name, "report", "ablation.csv")).Select(l => l[..l.LastIndexOf(',')]);
        var untimed = report[..report.IndexOf(StudyReport.TimingsMarker, StringComparison.Ordinal)];
        return (untimed.Replace(Path.Combine(_dir.FullName, name), "STUDY", StringComparison.Ordinal), string.Join('\n', csv));
    }

    [Fact]
    public async Task Three_shards_merged_give_the_report_of_one_process_and_a_killed_shard_resumes()
    {
        Directory.Exists(FashionMnist).Should().BeTrue("CI installs Debian's dataset-fashion-mnist (see .ci/run)");

        var whole = await Run(Study_("whole"));
        whole.Code.Should().Be(0, whole.Output);
        var (report, csv) = Results("whole");
        report.Should().Contain("| `ce` |").And.Contain("| `dtskd[t2=off]` |").And.Contain("Verdict:").And.Contain("25% of the training labels replaced");

        // Three shards as three processes, one after another (two LibTorch processes at once would crawl here); the third
        // reads its index from a Kubernetes Indexed Job's variable.
        (await Run(Study_("sharded", "--shard", "0/3"))).Code.Should().Be(0);
        (await Run(Study_("sharded", "--shard", "1/3"))).Code.Should().Be(0);
        var incomplete = await Run(["ablation", "merge", "--runs-dir", Path.Combine(_dir.FullName, "sharded", "runs"), "--output", Path.Combine(_dir.FullName, "sharded", "report.md")]);
        incomplete.Code.Should().Be(1, "a merge before every shard finished names what is missing");
        incomplete.Output.Should().Contain("lacks 1 of the study's 4 runs: dtskd[t2=off] seed 1");
        (await Run(Study_("sharded", "--shards", "3"), new Dictionary<string, string> { ["JOB_COMPLETION_INDEX"] = "2" })).Code.Should().Be(0);
        var merged = await Run(["ablation", "merge", "--runs-dir", Path.Combine(_dir.FullName, "sharded", "runs"), "--output", Path.Combine(_dir.FullName, "sharded", "report.md")]);
        merged.Code.Should().Be(0, merged.Output);
        var sharded = Results("sharded");
        sharded.Csv.Should().Be(csv, "sharding changes where runs train, not what they give");
        sharded.Report.Should().Be(report);

        // One process for the whole study, killed while its second run trains, then started again.
        var runs = Path.Combine(_dir.FullName, "killed", "runs");
        using (var doomed = Start(Study_("killed")))
        {
            var watch = Stopwatch.StartNew();
            while (!(Directory.Exists(runs) && Directory.GetFiles(runs, "*-seed*.json").Length >= 1) && watch.Elapsed < TimeSpan.FromMinutes(3) && !doomed.HasExited)
            {
                await Task.Delay(50);
            }

            doomed.HasExited.Should().BeFalse("the kill must come mid-study");
            doomed.Kill(entireProcessTree: true);
            await doomed.WaitForExitAsync();
        }

        Directory.GetFiles(runs, "*-seed*.json").Should().HaveCount(1, "the run in training when the shard died left no file");
        var restarted = await Run(Study_("killed"));
        restarted.Code.Should().Be(0, restarted.Output);
        restarted.Output.Should().Contain("1 already finished");
        Results("killed").Should().Be((report, csv));
    }

    [Fact]
    public async Task Another_study_in_the_same_runs_folder_is_refused()
    {
        (await Run(Study_("one", "--shard", "0/4"))).Code.Should().Be(0);
        var longer = Study_("one", "--shard", "1/4");
        longer[Array.IndexOf(longer, "--epochs") + 1] = "3";
        var other = await Run(longer);
        other.Code.Should().Be(2);
        other.Output.Should().Contain("holds the runs of another study");

        // A run file or study.json cut short (a full disk, a copy interrupted): one line naming it and what to do.
        var runs = Path.Combine(_dir.FullName, "one", "runs");
        var merge = new[] { "ablation", "merge", "--runs-dir", runs, "--output", Path.Combine(_dir.FullName, "one", "report.md") };
        var run = Directory.GetFiles(runs, "*-seed*.json").Single();
        File.WriteAllText(run, File.ReadAllText(run)[..40]);
        var cut = await Run(merge);
        cut.Code.Should().Be(2);
        cut.Output.Trim().Should().Be($"error: '{run}' is not a whole run record (cut short or not JSON): delete it and run its shard again; the ablation retrains only the runs it lacks.");
        var study = Path.Combine(runs, "study.json");
        File.WriteAllText(study, File.ReadAllText(study)[..30]);
        var broken = await Run(merge);
        broken.Code.Should().Be(2);
        broken.Output.Trim().Should().StartWith($"error: '{study}' is not a whole study record (cut short or not JSON)").And.NotContain("\n");
    }
}
