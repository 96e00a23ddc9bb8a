using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using DTSKD.Core.Training;
using DTSKD.Samples.Cifar100;
using Spectre.Console.Testing;
using DTSKD.Testing;
using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100.Tests;

public sealed class SampleTests : SampleTestBase
{
    [Theory]
    [InlineData("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\nbugs\t\t: spectre_v1\n", true)]
    [InlineData("flags\t\t: fpu amx_bf16 amx_tile\n", true)]
    [InlineData("flags\t\t: fpu sse2 avx2 avx512f avx512_vnni\nbugs\t\t: avx512_bf16\n", false)]
    [InlineData("flags\t\t: fpu avx512_bf16x\n", false)]
    [InlineData(null, false)]
    public void Native_bfloat16_is_read_from_the_cpu_flags_only(string? cpuInfo, bool expected) =>
        CpuFeatures.HasNativeBFloat16(cpuInfo).Should().Be(expected);

    [Fact]
    public void Auto_precision_is_bf16_only_on_a_cpu_with_native_bfloat16()
    {
        var auto = new ExperimentConfig();
        var cuda = new Device(TorchSharp.DeviceType.CUDA);   // a description only: torch.CUDA would initialise CUDA, absent here
        SampleRecipe.Precision(auto, CPU).Should().Be(CpuFeatures.NativeBFloat16 ? TrainingPrecision.BFloat16 : TrainingPrecision.Float32);
        SampleRecipe.Precision(auto, cuda).Should().Be(TrainingPrecision.Float32, "the half formats are opt-in on GPUs until measured there");
        SampleRecipe.Precision(auto with { Precision = "fp32" }, CPU).Should().Be(TrainingPrecision.Float32);
        SampleRecipe.Precision(auto with { Precision = "bf16" }, cuda).Should().Be(TrainingPrecision.BFloat16);
    }

    [Theory]
    [InlineData("--epochs -3", "--epochs must be greater than 0; got -3.")]
    [InlineData("--lr 0", "--lr must be greater than 0; got 0.")]
    [InlineData("--classifier-type resnet19_dtskd", "Unknown --classifier-type 'resnet19_dtskd'. Known models: resnet18_dtskd, resnet34_dtskd, resnext18_dtskd, shufflev2_dtskd, vgg16_dtskd.")]
    [InlineData("--data-type imagenet", "imagenet")]
    [InlineData("--cos-max 0.2 --cos-min 0.5", "--cos-min (0.5) must not exceed --cos-max (0.2).")]
    [InlineData("--hskd 2", "--hskd")]
    [InlineData("--train-limit 0", "--train-limit must be greater than 0.")]
    [InlineData("--lr abc", "Cannot parse argument 'abc' for option '--lr'")]
    [InlineData("--epochs abc", "Cannot parse argument 'abc' for option '--epochs'")]
    [InlineData("--momentum abc", "Cannot parse argument 'abc' for option '--momentum'")]
    [InlineData("--cos-max abc", "Cannot parse argument 'abc' for option '--cos-max'")]
    [InlineData("--train-limit abc", "Cannot parse argument 'abc' for option '--train-limit'")]
    [InlineData("--best-after abc", "Cannot parse argument 'abc' for option '--best-after'")]
    [InlineData("--threads 0", "--threads must be greater than 0; got 0.")]
    [InlineData("--resume --overwrite", "--resume and --overwrite exclude each other")]
    [InlineData("--objective dtsk", "--objective: unknown objective 'dtsk'; known objectives: ce, ce-all")]
    [InlineData("--objective ce[t2=off]", "--objective: objective 'ce' takes no overrides")]
    public async Task Invalid_values_exit_2_with_one_clear_line(string args, string message)
    {
        var (code, _, errors) = await Run(args.Split(' '));

        code.Should().Be(Sample.BadArguments);
        errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should().StartWith("error: ").And.Contain(message);
    }

    [Fact]
    public async Task Missing_cifar_with_no_download_exits_1_and_writes_nothing()
    {
        var experiments = Path.Combine(Dir.FullName, "experiments");
        var (code, _, errors) = await Run("--data-path", Path.Combine(Dir.FullName, "none"), "--no-download", "--experiments-dir", experiments);

        code.Should().Be(Sample.Failed);
        errors.TrimEnd().Should().StartWith("error: CIFAR-100 is not in").And.NotContain("\n");
        Directory.Exists(experiments).Should().BeFalse();
        Directory.Exists(Path.Combine(Dir.FullName, "none")).Should().BeFalse();
    }

    [Fact]
    public async Task A_data_path_without_the_idx_files_exits_1_with_one_line_and_writes_nothing()
    {
        var empty = Directory.CreateDirectory(Path.Combine(Dir.FullName, "empty")).FullName;
        var experiments = Path.Combine(Dir.FullName, "experiments");

        var (code, _, errors) = await Run("--data-type", "fashion-mnist", "--data-path", empty, "--experiments-dir", experiments);

        code.Should().Be(Sample.Failed);
        errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should().StartWith("error: Fashion-MNIST is not in").And.Contain("apt-get install dataset-fashion-mnist");
        Directory.Exists(experiments).Should().BeFalse();
    }

    [Fact]
    public async Task An_experiments_dir_that_cannot_hold_files_exits_2_with_one_line()
    {
        var blocker = Path.Combine(Dir.FullName, "a-file");
        await File.WriteAllTextAsync(blocker, "not a folder");

        var (code, _, errors) = await Run("--experiments-dir", Path.Combine(blocker, "experiments"), "--data-path", Path.Combine(Dir.FullName, "none"));

        code.Should().Be(Sample.BadArguments);
        errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should().StartWith("error: --experiments-dir").And.Contain("is a file, not a folder");
        (await File.ReadAllTextAsync(blocker)).Should().Be("not a folder");
    }

    [Fact]
    public async Task Help_documents_every_flag_and_the_milestone_default()
    {
        var (code, output, _) = await Run("--help");
        code.Should().Be(Sample.Ok);
        foreach (var flag in new[]
                 {
                     "--lr", "--lr-decay-schedule", "--lr-decay-rate", "--weight-decay", "--epochs", "--batch-size", "--hskd", "--backbone-weight",
                     "--b1-weight", "--b2-weight", "--b3-weight", "--ce-weight", "--kd-weight", "--coeff-decay", "--cos-max", "--cos-min", "--alpha-t",
                     "--classifier-type", "--data-type", "--data-path", "--experiments-dir", "--experiments-name", "--resume", "--overwrite", "--seed", "--device",
                     "--base-width", "--neck-width", "--train-limit", "--test-limit", "--precision", "--no-tf32", "--threads", "--best-after",
                     "--image-size", "--channels", "--image-mode", "--image-cache", "--skip-bad-images", "--stem", "--objective",
                 })
        {
            output.Should().MatchRegex(System.Text.RegularExpressions.Regex.Escape(flag) + "[ ,]");
        }

        output.Should().Contain("Default: 150 225");
        output.Should().Contain("--lr_decay_schedule").And.Contain("--HSKD").And.Contain("--end_epoch", "the release's spellings are aliases");
    }

    [Fact]
    public async Task Version_names_the_package_versions()
    {
        var (code, output, _) = await Run("--version");
        code.Should().Be(Sample.Ok);
        output.Should().MatchRegex(@"DTSKD\.Core \d+\.\d+\.\d+.*, TorchSharp \d+\.\d+\.\d+");
    }

    [Fact]
    public void Defaults_are_the_papers_recipe_and_the_config_round_trips()
    {
        var (request, error, _) = SampleCommandLine.Parse([], TextWriter.Null);
        error.Should().BeNull();
        var config = request!.Train;
        config.Should().BeEquivalentTo(new ExperimentConfig());
        config!.Lr.Should().Be(0.1);
        config.LrDecaySchedule.Should().Equal(150, 225);
        config.BackboneWeight.Should().Be(3.0);
        config.CeWeight.Should().Be(0.2);
        config.KdWeight.Should().Be(0.8);
        config.CoeffDecay.Should().Be("cos");
        config.ClassifierType.Should().Be("resnet18_dtskd");
        config.Seed.Should().Be(27);
        config.ResolvedBestAfter.Should().Be(200, "the release counts the best over the last 100 of 300 epochs");
        config.Threads.Should().Be(Environment.ProcessorCount);
        config.ResolvedName.Should().Be("resnet18_dtskd-cifar100-seed27");

        var custom = SampleCommandLine.Parse(["--lr", "0.05", "--lr-decay-schedule", "3", "7", "--hskd", "0", "--data-type", "fashion-mnist", "--train-limit", "100"], TextWriter.Null).Request!.Train;
        ExperimentOutputs.WriteConfig(Dir.FullName, custom!);
        ExperimentOutputs.ReadConfig(Dir.FullName).Should().BeEquivalentTo(custom);
        custom!.LrDecaySchedule.Should().Equal(3, 7);
        custom.Hskd.Should().BeFalse();
        custom.ResolvedDataPath.Should().Be("/usr/share/datasets/fashion-mnist");
    }

    [Fact]
    public void The_default_run_folder_says_what_makes_a_quick_run_different_from_the_recipe()
    {
        static string Name(params string[] args) => SampleCommandLine.Parse(args, TextWriter.Null).Request!.Train!.ResolvedName;

        Name().Should().Be("resnet18_dtskd-cifar100-seed27");
        Name("--train-limit", "1280", "--epochs", "1").Should().Be("resnet18_dtskd-cifar100-seed27-e1-train1280", "the README's speed check must not land in a full run's folder");
        Name("--data-type", "fashion-mnist", "--epochs", "2", "--base-width", "16", "--neck-width", "128")
            .Should().Be("resnet18_dtskd-fashion-mnist-seed27-e2-w16x128");
        Name("--experiments-name", "mine", "--epochs", "2").Should().Be("mine");
        Name("--objective", "ce").Should().Be("resnet18_dtskd-cifar100-ce-seed27", "a baseline never lands in the recipe's folder");
        Name("--objective", "dtskd[t2=off;warmup=20]").Should().Be("resnet18_dtskd-cifar100-dtskd_t2-off_warmup-20-seed27");
        Name("--objective", "dtskd").Should().Be("resnet18_dtskd-cifar100-seed27");
    }

    [Fact]
    public async Task The_cross_entropy_baseline_trains_on_the_same_engine_and_says_so()
    {
        var (_, experiments, common) = TinyRun("ce-baseline");

        var (code, output, errors) = await Run([.. common, "--epochs", "1", "--objective", "ce"]);

        code.Should().Be(Sample.Ok, output + errors);
        var run = Path.Combine(experiments, "ce-baseline");
        ExperimentOutputs.ReadConfig(run).Objective.Should().Be("ce");
        File.ReadAllText(Path.Combine(run, "report.md")).Should().Contain("objective `ce` (cross-entropy on the backbone head; branches untrained)");
        File.ReadAllLines(Path.Combine(run, "metrics.csv"))[0].Should().Contain("train_ce").And.NotContain("history");

        var (resumed, _, resumeErrors) = await Run([.. common, "--epochs", "2", "--objective", "dtskd", "--resume"]);
        resumed.Should().Be(Sample.BadArguments);
        resumeErrors.Should().Contain("--objective");
    }

    [Fact]
    public async Task One_epoch_end_to_end_writes_every_output_and_resumes()
    {
        var (_, experiments, common) = TinyRun("tiny");

        var (code, output, errors) = await Run([.. common, "--epochs", "1", "--threads", "2"]);

        errors.Should().BeEmpty();
        code.Should().Be(Sample.Ok, output);
        var run = Path.Combine(experiments, "tiny");
        foreach (var file in new[] { "config.json", "metrics.csv", "last.ckpt", "best.ckpt", "train.log", "accuracy.png", "loss.png", "schedule.png", "report.md" })
        {
            File.Exists(Path.Combine(run, file)).Should().BeTrue(file);
        }

        File.ReadAllLines(Path.Combine(run, "metrics.csv")).Should().HaveCount(2);
        File.ReadAllText(Path.Combine(run, "report.md")).Should().Contain("| backbone |").And.Contain("| branch 3 |").And.Contain("Wall time").And.Contain("over epochs 1-1");
        File.ReadAllBytes(Path.Combine(run, "accuracy.png"))[1..4].Should().Equal("PNG"u8.ToArray());
        var config = ExperimentOutputs.ReadConfig(run);
        config.DeviceUsed.Should().Be("CPU");
        config.Threads.Should().Be(2);
        output.Should().Contain("epoch 1/1").And.Contain("Done: final backbone top-1").And.Contain($"tensorboard --logdir {Path.Combine(run, "tensorboard")}");
        Directory.GetFiles(Path.Combine(run, "tensorboard"), "events.out.tfevents.*").Should().NotBeEmpty();

        var (resumed, resumedOutput, _) = await Run([.. common, "--epochs", "2", "--threads", "2", "--resume"]);

        resumed.Should().Be(Sample.Ok, resumedOutput);
        resumedOutput.Should().Contain("Resuming").And.Contain("epoch 2/2").And.NotContain("epoch 1/2  step");
        File.ReadAllLines(Path.Combine(run, "metrics.csv")).Should().HaveCount(3);
        var log = File.ReadAllLines(Path.Combine(run, "train.log"));
        log.Where(l => l.StartsWith("===== ", StringComparison.Ordinal)).Should().HaveCount(2)
            .And.SatisfyRespectively(
                first => first.Should().Contain("===== start").And.Contain("--epochs 1"),
                second => second.Should().Contain("===== resume at epoch 2, step 0").And.Contain("--resume"));
        ExperimentOutputs.ReadConfig(run).Epochs.Should().Be(2, "config.json records the command that last ran");
        File.ReadAllText(Path.Combine(run, "report.md")).Should().Contain("2 of 2 epochs");
    }

    [Fact]
    public async Task Rerunning_a_finished_run_without_resume_exits_2_and_changes_no_byte()
    {
        var (_, experiments, common) = TinyRun("done", train: 128, test: 64);
        (await Run([.. common, "--epochs", "1"])).Code.Should().Be(Sample.Ok);
        var run = Path.Combine(experiments, "done");
        var before = Snapshot(run);

        var (code, _, errors) = await Run([.. common, "--epochs", "1"]);

        code.Should().Be(Sample.BadArguments);
        errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should()
            .StartWith("error: ").And.Contain("already holds a run").And.Contain("last.ckpt").And.Contain("--resume").And.Contain("--experiments-name").And.Contain("--overwrite");
        Snapshot(run).Should().Equal(before);
    }

    [Fact]
    public async Task Overwrite_moves_the_old_run_aside_before_starting_afresh()
    {
        var (_, experiments, common) = TinyRun("again", train: 128, test: 64);
        (await Run([.. common, "--epochs", "1"])).Code.Should().Be(Sample.Ok);
        var oldMetrics = File.ReadAllText(Path.Combine(experiments, "again", "metrics.csv"));

        var (code, output, _) = await Run([.. common, "--epochs", "1", "--overwrite"]);

        code.Should().Be(Sample.Ok);
        var aside = Directory.GetDirectories(experiments, "again.replaced-*").Should().ContainSingle().Subject;
        output.Should().Contain("Moved the earlier run to");
        File.ReadAllText(Path.Combine(aside, "metrics.csv")).Should().Be(oldMetrics);
        File.ReadAllLines(Path.Combine(experiments, "again", "train.log")).Count(l => l.StartsWith("===== ", StringComparison.Ordinal)).Should().Be(1);
    }

    [Fact]
    public async Task Resuming_from_a_corrupted_checkpoint_exits_1_and_changes_no_byte()
    {
        var (_, experiments, common) = TinyRun("corrupt", train: 128, test: 64);
        (await Run([.. common, "--epochs", "1"])).Code.Should().Be(Sample.Ok);
        var run = Path.Combine(experiments, "corrupt");
        var checkpoint = Path.Combine(run, "last.ckpt");
        var bytes = await File.ReadAllBytesAsync(checkpoint);
        bytes[bytes.Length / 2] ^= 0xFF;
        await File.WriteAllBytesAsync(checkpoint, bytes);
        var before = Snapshot(run);

        var (code, _, errors) = await Run([.. common, "--epochs", "2", "--lr", "0.05", "--resume"]);

        code.Should().Be(Sample.Failed);
        errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should()
            .StartWith($"error: cannot resume from '{checkpoint}'").And.Contain("truncated or corrupted");
        Snapshot(run).Should().Equal(before, "config.json keeps the settings of the run that wrote the checkpoint");
    }

    [Fact]
    public async Task Resuming_with_another_width_exits_2_and_changes_no_byte()
    {
        var (_, experiments, common) = TinyRun("width", train: 128, test: 64);
        (await Run([.. common, "--epochs", "1"])).Code.Should().Be(Sample.Ok);
        var run = Path.Combine(experiments, "width");
        var before = Snapshot(run);

        var (code, _, errors) = await Run([.. common.Select(a => a == "16" ? "32" : a), "--epochs", "2", "--resume"]);

        code.Should().Be(Sample.BadArguments);
        errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should()
            .StartWith("error: --resume cannot change --base-width (the run has 16, the command line 32)");
        Snapshot(run).Should().Equal(before);
    }

    [Fact]
    public async Task Cancelling_saves_a_checkpoint_and_exits_130()
    {
        var (_, experiments, common) = TinyRun("stop", train: 200, test: 50);
        using var stop = new SampleStop();
        stop.Request(PosixSignal.SIGINT);

        var (code, output, _) = await Run(stop, [.. common, "--epochs", "3"]);

        code.Should().Be(Sample.Interrupted);
        File.Exists(Path.Combine(experiments, "stop", "last.ckpt")).Should().BeTrue();
        output.Should().Contain("--resume");
    }

    [Fact]
    public async Task Resuming_with_another_thread_count_warns_that_it_is_not_bit_identical()
    {
        var (_, _, common) = TinyRun("threads", train: 128, test: 64);
        (await Run([.. common, "--epochs", "1", "--threads", "2"])).Code.Should().Be(Sample.Ok);

        var (code, output, _) = await Run([.. common, "--epochs", "2", "--threads", "1", "--resume"]);

        code.Should().Be(Sample.Ok);
        output.Should().Contain("warning:").And.Contain("Resuming with 1 CPU threads").And.Contain("not bit-identically");
    }

    [Fact]
    public async Task Sigterm_saves_a_checkpoint_exits_143_and_resume_finishes_the_run_exactly()
    {
        var (_, experiments, common) = TinyRun("term", train: 640, test: 64, batch: 32, logInterval: 1);
        string[] args = [.. common, "--epochs", "2", "--threads", "2"];

        // The uninterrupted run, in-process, for comparison.
        (await Run([.. args.Select(a => a == "term" ? "straight" : a)])).Code.Should().Be(Sample.Ok);

        var sample = Path.Combine(AppContext.BaseDirectory, "DTSKD.Samples.Cifar100.dll");
        var info = new ProcessStartInfo("dotnet", [sample, .. args]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string? line;
        while ((line = await process.StandardOutput.ReadLineAsync()) is not null && !line.Contains("epoch 1/2  step 3/", StringComparison.Ordinal))
        {
        }

        line.Should().NotBeNull("the sample reports its steps");
        using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
            kill.ExitCode.Should().Be(0);
        }

        var rest = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();

        process.ExitCode.Should().Be(Sample.Terminated, rest + await stderr);
        rest.Should().Contain("checkpoint saved").And.Contain("--resume");
        var (code, _, _) = await Run([.. args, "--resume"]);
        code.Should().Be(Sample.Ok);
        static string[] Metrics(string run) =>
            [.. File.ReadAllLines(Path.Combine(run, "metrics.csv")).Select(l => string.Join(",", l.Split(',').SkipLast(3)))];
        Metrics(Path.Combine(experiments, "term")).Should().Equal(Metrics(Path.Combine(experiments, "straight")), "everything but the timing columns");
    }

    [Fact]
    public async Task After_training_evaluate_export_and_predict_work_on_the_run()
    {
        var (data, experiments, common) = TinyRun("after", train: 256, test: 64);
        (await Run([.. common, "--epochs", "1"])).Code.Should().Be(Sample.Ok);
        var run = Path.Combine(experiments, "after");
        var row = File.ReadAllLines(Path.Combine(run, "metrics.csv")).Select(l => l.Split(',')).ToList();
        string Reported(string column) => row[1][Array.IndexOf(row[0], column)];
        static string F(string value, string format) => double.Parse(value, System.Globalization.CultureInfo.InvariantCulture).ToString(format, System.Globalization.CultureInfo.InvariantCulture);

        // evaluate: the run's own numbers for its epoch.
        var (code, output, errors) = await Run("evaluate", "--run", run, "--device", "cpu");
        code.Should().Be(Sample.Ok, errors);
        output.Should().Contain($"backbone  top-1 {F(Reported("test_top1_backbone"), "F2")}%")
            .And.Contain($"branch 3  top-1 {F(Reported("test_top1_branch3"), "F2")}%")
            .And.Contain($"top-5 {F(Reported("test_top5_backbone"), "F2")}%  loss {F(Reported("test_loss"), "F4")}")
            .And.Contain("The run reported for epoch 1");

        // export: the plain classifier, in both formats.
        (code, output, errors) = await Run("export", "--run", run);
        code.Should().Be(Sample.Ok, errors);
        var exported = Path.Combine(run, "backbone.pt");
        File.Exists(exported).Should().BeTrue();
        File.Exists(Path.Combine(run, "backbone.safetensors")).Should().BeTrue();
        Core.Interop.PyTorchWeights.Describe(exported).Keys.Should().Contain("fc.weight").And.NotContain(k => k.StartsWith("fc_b", StringComparison.Ordinal) || k.StartsWith("laterals", StringComparison.Ordinal));
        output.Should().Contain("parameters");

        // predict: test images written as PNG and JPEG, with the run and with the exported backbone.
        var records = File.ReadAllBytes(Path.Combine(data, "cifar-100-binary", "test.bin"));
        var png = WriteImage(records, 0, "first.png", SkiaSharp.SKEncodedImageFormat.Png);
        var jpeg = WriteImage(records, 1, "second.jpg", SkiaSharp.SKEncodedImageFormat.Jpeg);
        var (byRun, runOutput, runErrors) = await Run("predict", "--run", run, "--top", "3", png, jpeg);
        byRun.Should().Be(Sample.Ok, runErrors);
        var lines = runOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        lines.Should().HaveCount(2).And.OnlyContain(l => l.Split(", ").Length == 3 && l.Contains("kind", StringComparison.Ordinal) && l.EndsWith('%'));
        var (byExport, exportOutput, _) = await Run("predict", "--weights", exported, "--data-path", data, "--base-width", "16", "--neck-width", "16", "--top", "3", png, jpeg);
        byExport.Should().Be(Sample.Ok);
        exportOutput.Should().Be(runOutput, "the exported backbone is the run's backbone");

        // ONNX: exported with its preprocessing, then classified on ONNX Runtime alone, with the run's top-1.
        (code, output, errors) = await Run("export", "--run", run, "--format", "onnx", "--fold-batchnorm");
        code.Should().Be(Sample.Ok, errors);
        output.Should().Contain("backbone.onnx").And.Contain("opset 17").And.Contain("batch norms folded");
        var (byOnnx, onnxOutput, onnxErrors) = await Run("predict", "--onnx", Path.Combine(run, "backbone.onnx"), "--top", "3", png, jpeg);
        byOnnx.Should().Be(Sample.Ok, onnxErrors);
        static string[] Top1(string text) => [.. text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => string.Join(' ', l.Split(": ", 2)[1].Split(", ")[0].Split(' ').SkipLast(1)))];
        Top1(onnxOutput).Should().Equal(Top1(runOutput), "ONNX Runtime ranks the images as TorchSharp does");
    }

    [Fact]
    public async Task Predict_answers_every_readable_file_a_batch_at_a_time_and_names_the_others()
    {
        var (data, experiments, common) = TinyRun("stream", train: 128, test: 64);
        (await Run([.. common, "--epochs", "1"])).Code.Should().Be(Sample.Ok);
        var run = Path.Combine(experiments, "stream");
        (await Run("export", "--run", run, "--format", "onnx")).Code.Should().Be(Sample.Ok);
        var records = File.ReadAllBytes(Path.Combine(data, "cifar-100-binary", "test.bin"));
        var good = Enumerable.Range(0, 5).Select(i => WriteImage(records, i, $"good{i}.png", SkiaSharp.SKEncodedImageFormat.Png)).ToArray();

        // A truncated PNG passes the header check and fails in the decoder: on ONNX Runtime its batch is answered image by image.
        var truncated = Path.Combine(Dir.FullName, "truncated.png");
        var whole = File.ReadAllBytes(good[0]);
        File.WriteAllBytes(truncated, whole[..(whole.Length / 2)]);
        var text = Path.Combine(Dir.FullName, "text.png");
        File.WriteAllText(text, "no pixels here");
        var missing = Path.Combine(Dir.FullName, "missing.png");
        string[] files = [good[0], missing, good[1], text, good[2], truncated, good[3], Dir.FullName, good[4]];

        foreach (var engine in new[] { new[] { "--run", run }, ["--onnx", Path.Combine(run, "backbone.onnx")] })
        {
            var (alone, aloneOutput, aloneErrors) = await Run(["predict", .. engine, "--top", "2", .. good]);
            alone.Should().Be(Sample.Ok, aloneErrors);
            var (code, output, errors) = await Run(["predict", .. engine, "--top", "2", "--batch-size", "2", .. files]);

            code.Should().Be(Sample.Failed, "four of the nine cannot be classified");
            output.Should().Be(aloneOutput, $"{engine[0]}: the five good images are answered, in their order, as when given alone");
            errors.TrimEnd().Split('\n').Should().Equal(
                $"error: image '{missing}' does not exist.",
                $"error: '{text}' is not an image SkiaSharp can read (PNG, JPEG, BMP, GIF, WebP).",
                $"error: '{truncated}' is truncated (its pixel data ends early).",
                $"error: '{Dir.FullName}' is a folder; give image files (for every image in it: '{Path.Combine(Dir.FullName, "*")}').",
                "error: 4 of 9 images could not be classified (named above); 5 answered.");
        }

        // Paths from a file, as a long list is given; a batch of one answers the same.
        var list = Path.Combine(Dir.FullName, "paths.txt");
        File.WriteAllLines(list, good);
        var (byList, listOutput, listErrors) = await Run("predict", "--run", run, "--top", "2", "--batch-size", "1", "@" + list);
        byList.Should().Be(Sample.Ok, listErrors);
        listOutput.Should().Be((await Run(["predict", "--run", run, "--top", "2", .. good])).Output);
    }

    [Fact]
    public async Task After_training_commands_refuse_bad_input_with_one_line()
    {
        var (_, experiments, common) = TinyRun("bad", train: 128, test: 64);
        (await Run([.. common, "--epochs", "1"])).Code.Should().Be(Sample.Ok);
        var run = Path.Combine(experiments, "bad");
        var garbage = Path.Combine(Dir.FullName, "not-an-image.png");
        await File.WriteAllTextAsync(garbage, "no pixels here");

        // An export whose metadata a hand edit broke: predict --onnx refuses it as the server does, before any image.
        (await Run("export", "--run", run, "--format", "onnx")).Code.Should().Be(Sample.Ok);
        var broken = Path.Combine(Dir.FullName, "broken.onnx");
        OnnxMetadata.Rewrite(Path.Combine(run, "backbone.onnx"), broken, m => m["dtskd.std"] = "0");
        var before = Snapshot(run);

        foreach (var (args, code, message) in new (string[], int, string)[]
                 {
                     (["evaluate", "--run", Path.Combine(Dir.FullName, "nowhere")], Sample.Failed, "is not a run folder"),
                     (["evaluate", "--run", run, "--checkpoint", Path.Combine(run, "missing.ckpt")], Sample.Failed, "missing.ckpt' does not exist"),
                     (["evaluate", "--weights", Path.Combine(run, "last.ckpt"), "--classifier-type", "resnet34_dtskd", "--base-width", "16", "--neck-width", "16"], Sample.Failed, "does not fit resnet34_dtskd"),
                     (["predict", "--weights", Path.Combine(run, "last.ckpt"), "--data-type", "cifar10", "--base-width", "16", "--neck-width", "16", garbage], Sample.Failed, "does not fit resnet18_dtskd (10 classes"),
                     (["predict", "--run", run, garbage], Sample.Failed, "not-an-image.png' is not an image SkiaSharp can read (PNG, JPEG, BMP, GIF, WebP)."),
                     (["predict", "--run", run, "--batch-size", "0", garbage], Sample.BadArguments, "--batch-size must be greater than 0; got 0."),
                     (["predict", "--run", run, "@" + Path.Combine(Dir.FullName, "no-such-list.txt")], Sample.BadArguments, "Response file not found"),
                     (["export"], Sample.BadArguments, "needs a trained run (--run <folder>) or weights (--weights <file>)"),
                     (["export", "--run", run, "--all-heads"], Sample.BadArguments, "--all-heads applies to --format onnx only"),
                     (["predict", "--onnx", Path.Combine(run, "missing.onnx"), garbage], Sample.Failed, "missing.onnx' does not exist"),
                     (["predict", "--onnx", garbage, garbage], Sample.BadArguments, "is not an ONNX model ONNX Runtime can load"),
                     (["predict", "--onnx", broken, garbage], Sample.BadArguments, "metadata dtskd.std is '0'; expected 3 comma-separated numbers, each a positive standard deviation."),
                     (["predict", "--onnx", garbage, "--run", run, garbage], Sample.BadArguments, "predict --onnx runs the exported file alone"),
                 })
        {
            var (actual, _, errors) = await Run(args);
            actual.Should().Be(code, string.Join(' ', args));
            errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should().StartWith("error: ").And.Contain(message);
        }

        Snapshot(run).Should().Equal(before, "refused commands write nothing");
    }

    [Theory]
    [InlineData("cpu", "TorchSharp-cpu")]
    [InlineData("cuda-linux", "TorchSharp-cuda-linux")]
    [InlineData("cuda-windows", "TorchSharp-cuda-windows")]
    public void The_backend_property_selects_the_libtorch_bundle(string backend, string package)
    {
        var root = typeof(SampleTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "RepoRoot").Value!;
        var project = Path.Combine(root, "samples", "DTSKD.Samples.Cifar100", "DTSKD.Samples.Cifar100.csproj");
        var info = new ProcessStartInfo("dotnet", ["msbuild", project, "-getItem:PackageReference", $"-p:TorchSharpBackend={backend}", "-nologo"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();

        process.ExitCode.Should().Be(0, output);
        var bundles = new[] { "TorchSharp-cpu", "TorchSharp-cuda-linux", "TorchSharp-cuda-windows" }.Where(b => output.Contains($"\"{b}\"", StringComparison.Ordinal));
        bundles.Should().Equal(package);
    }

    [Fact]
    public async Task A_relative_data_path_is_recorded_resolved_so_the_run_evaluates_from_any_directory()
    {
        var experiments = Path.Combine(Path.GetTempPath(), $"dtskd-relative-{Guid.NewGuid():N}");
        try
        {
            var relative = Path.GetRelativePath(Environment.CurrentDirectory, "/usr/share/datasets/fashion-mnist");
            relative.Should().NotStartWith("/");
            var (code, _, errors) = await Run("--data-type", "fashion-mnist", "--data-path", relative, "--epochs", "1", "--train-limit", "64", "--test-limit", "64",
                "--base-width", "16", "--neck-width", "16", "--batch-size", "32", "--experiments-dir", experiments, "--experiments-name", "relative", "--device", "cpu");
            code.Should().Be(0, errors);
            var run = Path.Combine(experiments, "relative");
            File.ReadAllText(Path.Combine(run, "config.json")).Should().Contain("\"data-path\": \"/usr/share/datasets/fashion-mnist\"");
            var (evaluated, output, evaluateErrors) = await RunProcess(["evaluate", "--run", run], shellPrefix: "cd / && ");
            evaluated.Should().Be(0, evaluateErrors);
            output.Should().Contain("backbone  top-1");
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
