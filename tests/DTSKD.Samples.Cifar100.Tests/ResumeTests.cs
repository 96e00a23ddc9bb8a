using System.Globalization;

namespace DTSKD.Samples.Cifar100.Tests;

/// <summary><c>--resume</c> applies a changed option or refuses it, finds the run it continues, and records what it used.</summary>
public sealed class ResumeTests : SampleTestBase
{
    private static string[][] Csv(string run) => [.. File.ReadAllLines(Path.Combine(run, "metrics.csv")).Select(l => l.Split(','))];

    private static string Column(string[][] csv, int row, string column) => csv[row][Array.IndexOf(csv[0], column)];

    [Fact]
    public async Task A_changed_learning_rate_applies_from_where_the_run_stopped_and_config_json_records_it()
    {
        var (_, experiments, common) = TinyRun("lr", train: 128, test: 64);
        (await Run([.. common, "--epochs", "1"])).Code.Should().Be(Sample.Ok);
        var run = Path.Combine(experiments, "lr");

        var (code, output, _) = await Run([.. common, "--epochs", "2", "--lr", "0.05", "--resume"]);

        code.Should().Be(Sample.Ok, output);
        output.Should().Contain("applies from here: --epochs 2 (the run had 1)").And.Contain("applies from here: --lr 0.05 (the run had 0.1)");
        var csv = Csv(run);
        Column(csv, 1, "lr").Should().Be("0.1");
        Column(csv, 2, "lr").Should().Be("0.05", "the optimizer trains with the new rate, not the checkpoint's");
        var config = ExperimentOutputs.ReadConfig(run);
        config.Lr.Should().Be(0.05);
        config.Epochs.Should().Be(2);
        File.ReadAllText(Path.Combine(run, "train.log")).Should().Contain("Resuming with LearningRate = 0.05 (the checkpoint was written with 0.1): applied from epoch 2");
    }

    [Fact]
    public async Task Extending_a_default_named_run_finds_it_and_the_report_and_the_final_line_agree()
    {
        var data = WriteCifar100(128, 64);
        var experiments = Path.Combine(Dir.FullName, "experiments");
        string[] common = ["--data-path", data, "--experiments-dir", experiments, "--base-width", "16", "--neck-width", "16", "--batch-size", "64", "--device", "cpu", "--precision", "fp32"];
        (await Run([.. common, "--epochs", "1"])).Code.Should().Be(Sample.Ok);
        var run = Path.Combine(experiments, "resnet18_dtskd-cifar100-seed27-e1-w16x16");
        Directory.Exists(run).Should().BeTrue("the default name holds the epoch count");

        var (code, output, errors) = await Run([.. common, "--epochs", "3", "--resume"]);

        code.Should().Be(Sample.Ok, errors);
        output.Should().Contain($"Resuming '{run}' at epoch 2, step 0.");
        Directory.GetDirectories(experiments).Should().ContainSingle("the run continues in its own folder");
        var csv = Csv(run);
        csv.Should().HaveCount(4);

        // Best over epochs 3-3 (two thirds of 3), the same in the final line and in report.md.
        var best = double.Parse(Column(csv, 3, "test_top1_backbone"), CultureInfo.InvariantCulture).ToString("F2", CultureInfo.InvariantCulture);
        output.Should().Contain($"best over epochs 3-3 {best}% (epoch 3)");
        var report = File.ReadAllText(Path.Combine(run, "report.md"));
        report.Should().Contain("3 of 3 epochs").And.Contain($"| backbone | {best} |").And.Contain("Best backbone epoch: 3.");
    }

    [Fact]
    public async Task A_run_resumes_by_its_folder_with_everything_else_from_its_config()
    {
        var (_, experiments, common) = TinyRun("byfolder", train: 128, test: 64);
        (await Run([.. common, "--epochs", "1", "--lr", "0.02"])).Code.Should().Be(Sample.Ok);
        var run = Path.Combine(experiments, "byfolder");

        var (code, output, errors) = await Run("--resume", run, "--epochs", "2");

        code.Should().Be(Sample.Ok, errors);
        output.Should().Contain($"Resuming '{run}' at epoch 2, step 0.").And.NotContain("--lr");
        Column(Csv(run), 2, "lr").Should().Be("0.02", "the run's own learning rate, from its config.json");
        ExperimentOutputs.ReadConfig(run).BaseWidth.Should().Be(16);
    }

    [Fact]
    public async Task What_would_make_it_another_run_is_refused_and_changes_no_byte()
    {
        var (_, experiments, common) = TinyRun("fixed", train: 128, test: 64);
        (await Run([.. common, "--epochs", "2"])).Code.Should().Be(Sample.Ok);
        var run = Path.Combine(experiments, "fixed");
        var before = Snapshot(run);

        foreach (var (args, exit, message) in new (string[], int, string)[]
                 {
                     (["--epochs", "1", "--resume"], Sample.BadArguments, "error: --epochs 1: the run has already trained 2 epochs; give at least 2."),
                     (["--epochs", "3", "--seed", "5", "--resume"], Sample.BadArguments, "error: --resume cannot change --seed (the run has 27, the command line 5)"),
                     (["--epochs", "3", "--hskd", "0", "--resume"], Sample.BadArguments, "error: --resume cannot change --hskd (the run has True, the command line False)"),
                     (["--epochs", "3", "--precision", "bf16", "--resume"], Sample.BadArguments, "error: --resume cannot change --precision (the run has fp32, the command line bf16)"),
                     (["--resume", Path.Combine(experiments, "nothing-here")], Sample.BadArguments, $"error: --resume '{Path.Combine(experiments, "nothing-here")}' is not a run folder"),
                 })
        {
            var (code, _, errors) = await Run([.. common.Where(a => a != "--precision" && a != "fp32" || !args.Contains("--precision")), .. args]);
            code.Should().Be(exit, string.Join(' ', args));
            errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should().StartWith(message);
        }

        Snapshot(run).Should().Equal(before);
    }
}
