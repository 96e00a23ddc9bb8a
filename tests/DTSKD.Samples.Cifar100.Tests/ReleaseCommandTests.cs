namespace DTSKD.Samples.Cifar100.Tests;

/// <summary>The release's README command pasted after the sample's <c>--</c>: its own spellings train the same run.</summary>
public sealed class ReleaseCommandTests : SampleTestBase
{
    /// <summary>The README's command, token for token (the shell has taken its quotes off), its placeholders filled in.</summary>
    private static string[] ReadmeCommand(string experimentsDir, string dataType) =>
    [
        "--lr", "0.1", "--lr_decay_schedule", "150", "225", "--HSKD", "1",
        "--experiments_dir", experimentsDir, "--experiments_name", "Experiment name",
        "--classifier_type", "resnet18_dtkd", "--data_path", "/usr/share/datasets/fashion-mnist", "--data_type", dataType,
        "--backbone_weight", "3.0", "--b1_weight", "1.0", "--b2_weight", "1.0", "--b3_weight", "1.0",
        "--ce_weight", "0.2", "--kd_weight", "0.8", "--coeff_decay", "cos", "--cos_max", "0.9", "--cos_min", "0.0",
        "--rank", "0", "--tsne", "0", "--world_size", "1",
    ];

    [Fact]
    public void The_readme_s_flags_are_the_sample_s_options_in_the_release_s_spelling()
    {
        var (request, error, _) = SampleCommandLine.Parse(ReadmeCommand("runs", "cifar100"), TextWriter.Null);
        error.Should().BeNull();
        var config = request!.Train!;
        config.ClassifierType.Should().Be("resnet18_dtskd");
        config.LrDecaySchedule.Should().Equal(150, 225);
        (config.Hskd, config.ExperimentsDir, config.ExperimentsName, config.DataType).Should().Be((true, "runs", "Experiment name", "cifar100"));
        (config.BackboneWeight, config.CeWeight, config.KdWeight, config.CoeffDecay, config.CosMax, config.CosMin).Should().Be((3.0, 0.2, 0.8, "cos", 0.9, 0.0));
        request.Notes.Should().ContainSingle().Which.Should().Be("--classifier_type resnet18_dtkd: the release's README spelling of resnet18_dtskd; training resnet18_dtskd.");
        request.Given.Should().Contain(["--lr-decay-schedule", "--hskd", "--classifier-type", "--cos-max"]);

        var more = SampleCommandLine.Parse(["--end_epoch=12", "--batch_size", "64", "--weight_decay", "1e-4", "--random_seed", "3", "--alpha_T", "0.7", "--workers", "8",
            "--dist_backend", "nccl", "--dist_url", "tcp://127.0.0.1:8080", "--multiprocessing_distributed", "--saveckp_freq", "299", "--start_epoch", "0"], TextWriter.Null);
        more.Error.Should().BeNull();
        (more.Request!.Train!.Epochs, more.Request.Train.BatchSize, more.Request.Train.WeightDecay, more.Request.Train.Seed, more.Request.Train.AlphaT).Should().Be((12, 64, 1e-4, 3L, 0.7));
        more.Request.Notes.Should().HaveCount(5).And.Contain(n => n.StartsWith("--workers: not used;", StringComparison.Ordinal))
            .And.Contain(n => n.StartsWith("--dist_url: not used; the ranks of a data-parallel run meet through MPI", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(new[] { "--tsne", "1", "--tsne", "0" }, "--tsne is given twice, as '--tsne 1' and '--tsne 0': give it once.")]
    [InlineData(new[] { "--lr_decay_schedule", "150", "225", "--lr_decay_schedule", "10" }, "--lr_decay_schedule is given twice, as '--lr_decay_schedule 150 225' and '--lr_decay_schedule 10': give it once, with all its values.")]
    [InlineData(new[] { "--lr_decay_schedule", "150", "--lr-decay-schedule", "10" }, "--lr-decay-schedule is given twice, as '--lr_decay_schedule 150' and '--lr-decay-schedule 10': give it once.")]
    [InlineData(new[] { "--lr", "0.05", "--lr=" }, "--lr is given twice, as '--lr 0.05' and '--lr ''': give it once.")]
    [InlineData(new[] { "--epochs", "3", "--epochs", "4" }, "--epochs is given twice, as '--epochs 3' and '--epochs 4': give it once.")]
    public void A_flag_given_twice_with_different_values_is_refused(string[] args, string expected)
    {
        var (request, error, _) = SampleCommandLine.Parse(args, TextWriter.Null);
        request.Should().BeNull();
        error.Should().Be(expected);
        SampleCommandLine.Parse(["--epochs", "3", "--epochs", "3", "--tsne", "--tsne", "1"], TextWriter.Null).Error.Should().BeNull("the same value twice is one value");
    }

    [Theory]
    [InlineData("--world_size", "0", "--world_size 0: a number of processes from 1 (or the release's -1, not distributed).")]
    [InlineData("--rank", "-2", "--rank -2: a rank from 0 (or the release's -1, not distributed).")]
    [InlineData("--tsne", "2", "--tsne 2: 0 or 1 (1 keeps the best epoch's test outputs and draws their t-SNE map).")]
    [InlineData("--start_epoch", "150", "--start_epoch 150: a run continues from its checkpoint with --resume")]
    [InlineData("--HSKD", "2", "--hskd")]
    public void What_one_process_cannot_do_is_refused_in_one_line(string flag, string value, string expected)
    {
        var (request, error, _) = SampleCommandLine.Parse([flag, value], TextWriter.Null);
        request.Should().BeNull();
        error.Should().Contain(expected).And.NotContain("\n");
    }

    [Fact]
    public async Task The_release_s_rank_and_world_size_are_the_sample_s_checked_against_the_launcher()
    {
        var defaults = SampleCommandLine.Parse(["--rank", "-1", "--world_size", "-1"], TextWriter.Null).Request!.Train!;
        (defaults.Rank, defaults.WorldSize).Should().Be(((int?)null, (int?)null), "-1 is the release's 'not distributed'");
        var two = SampleCommandLine.Parse(["--world_size", "2", "--rank", "1"], TextWriter.Null).Request!;
        (two.Train!.Rank, two.Train.WorldSize).Should().Be((1, 2));
        two.Notes.Should().ContainSingle().Which.Should().StartWith("--world_size 2: the sample's --world-size 2; one sample per rank, started by the launcher (mpirun -np 2");

        // Started by hand, this is one process: two ranks are refused before anything is written.
        var experiments = Path.Combine(Dir.FullName, "runs");
        var (code, _, errors) = await Run("--data-type", "fashion-mnist", "--world_size", "2", "--experiments-dir", experiments);
        code.Should().Be(Sample.BadArguments);
        errors.Trim().Should().Be("error: --world-size 2: no launcher started this process (none of OMPI_COMM_WORLD_SIZE, PMI_SIZE, SLURM_NTASKS is set); start the ranks with mpirun -np 2 (docs/scaling.md).");
        (code, _, errors) = await Run("--data-type", "fashion-mnist", "--rank", "1", "--experiments-dir", experiments);
        errors.Trim().Should().Be("error: --rank 1: ranks run from 0 below the world size (1).");
        Directory.Exists(experiments).Should().BeFalse();
    }

    [Fact]
    public async Task Tsne_1_keeps_the_best_epoch_s_test_outputs_and_draws_their_map_and_evaluate_tsne_does_it_again()
    {
        var experiments = Path.Combine(Path.GetTempPath(), $"dtskd-tsne-{Guid.NewGuid():N}");
        try
        {
            SampleCommandLine.Parse(["--tsne", "1"], TextWriter.Null).Request!.Train!.Tsne.Should().BeTrue();
            SampleCommandLine.Parse(["--tsne=0"], TextWriter.Null).Request!.Train!.Tsne.Should().BeFalse();
            SampleCommandLine.Parse(["--tsne", "--epochs", "2"], TextWriter.Null).Request!.Train!.Tsne.Should().BeTrue("the sample's own switch");
            var (code, output, errors) = await Run("--data_type", "fashion-mnist", "--tsne", "1", "--end_epoch", "1", "--train-limit", "128", "--test-limit", "300",
                "--base-width", "16", "--neck-width", "64", "--experiments_dir", experiments, "--experiments_name", "tsne", "--device", "cpu");
            code.Should().Be(0, errors);
            var tsne = Path.Combine(experiments, "tsne", "tsne");
            output.Should().Contain("t-SNE: ").And.Contain("(300 of 300 test images, trustworthiness 0.");
            var saved = DTSKD.Core.Interop.PyTorchWeights.Describe(Path.Combine(tsne, "test-outputs.safetensors"));
            saved["logits"].Shape.Should().Equal(300, 10);
            saved["features"].Shape.Should().Equal(300, 128);
            saved["labels"].Shape.Should().Equal(300);
            File.ReadAllBytes(Path.Combine(tsne, "tsne.png")).Take(4).Should().Equal(0x89, 0x50, 0x4E, 0x47);

            Directory.Delete(tsne, recursive: true);
            var (again, againOutput, againErrors) = await Run("evaluate", "--run", Path.Combine(experiments, "tsne"), "--tsne");
            again.Should().Be(0, againErrors);
            againOutput.Should().Contain("t-SNE: ");
            File.Exists(Path.Combine(tsne, "tsne.png")).Should().BeTrue();
        }
        finally
        {
            if (Directory.Exists(experiments))
            {
                Directory.Delete(experiments, recursive: true);
            }
        }
    }

    [Fact]
    public async Task The_readme_s_command_verbatim_trains_with_only_the_data_type_changed_and_limits_added()
    {
        var experiments = Path.Combine(Path.GetTempPath(), $"dtskd-release-{Guid.NewGuid():N}");
        try
        {
            var (code, output, errors) = await Run([.. ReadmeCommand(experiments, "fashion-mnist"), "--end_epoch", "1", "--train-limit", "256", "--test-limit", "256", "--device", "cpu"]);
            code.Should().Be(0, errors);
            output.Should().Contain("note: --classifier_type resnet18_dtkd: the release's README spelling of resnet18_dtskd");
            var config = File.ReadAllText(Path.Combine(experiments, "Experiment name", "config.json"));
            config.Should().Contain("\"classifier-type\": \"resnet18_dtskd\"").And.Contain("\"ce-weight\": 0.2").And.Contain("\"cos-max\": 0.9");
            File.Exists(Path.Combine(experiments, "Experiment name", "last.ckpt")).Should().BeTrue();
        }
        finally
        {
            if (Directory.Exists(experiments))
            {
                Directory.Delete(experiments, recursive: true);
            }
        }
    }
}
