using System.Security.Cryptography;
using DTSKD.Core.Training;

namespace DTSKD.Samples.Cifar100.Tests;

/// <summary>Faults during a run end with one line, a documented exit code and nothing lost.</summary>
public sealed class RunFaultTests : SampleTestBase
{
    private static string Hash(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    private static IEnumerable<string> Temporaries(string folder) =>
        Directory.GetFiles(folder, "*", SearchOption.AllDirectories).Where(f => Core.AtomicFile.IsTemporaryName(Path.GetFileName(f)) || f.EndsWith(".tmp", StringComparison.Ordinal));

    [Fact]
    public async Task A_write_that_fails_for_lack_of_room_exits_4_with_one_line_and_keeps_the_last_checkpoint()
    {
        var (_, experiments, common) = TinyRun("full", train: 192, test: 64);
        (await Run([.. common, "--epochs", "1"])).Code.Should().Be(Sample.Ok);
        var run = Path.Combine(experiments, "full");
        var checkpoint = Path.Combine(run, "last.ckpt");
        var before = Hash(checkpoint);
        new FileInfo(checkpoint).Length.Should().BeGreaterThan(2 << 20, "the limit below must stop the checkpoint, not the small files");

        // A real failed write, without privileges: a 2 MB limit on the size of any file the process writes (the kernel's
        // RLIMIT_FSIZE), with SIGXFSZ ignored so that write() fails with EFBIG instead of killing the process. The .NET
        // runtime's W^X double mapping sizes a memory file past such a limit at start-up, so it is off for this process.
        var (code, output, errors) = await RunProcess([.. common, "--epochs", "2", "--resume"], "ulimit -f 2048; trap '' XFSZ; DOTNET_EnableWriteXorExecute=0 ");

        code.Should().Be(Sample.CannotWrite, output + errors);
        errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should()
            .Be($"error: Cannot write '{checkpoint}': File too large (more than the file system or this process's file-size limit allows). It is unchanged. Training stopped; '{checkpoint}' holds the last epoch saved (continue with --resume {run}).");
        Hash(checkpoint).Should().Be(before, "the previous checkpoint survives");
        Temporaries(run).Should().BeEmpty("a failed write removes its temporary file");
        File.ReadAllLines(Path.Combine(run, "metrics.csv")).Should().HaveCount(2, "the failed epoch is not recorded");
    }

    [Fact]
    public async Task A_file_that_cannot_be_written_exits_4_naming_it_and_leaves_no_temporary_file()
    {
        var (_, experiments, common) = TinyRun("blocked", train: 128, test: 64);
        var run = Directory.CreateDirectory(Path.Combine(experiments, "blocked")).FullName;
        Directory.CreateDirectory(Path.Combine(run, "config.json"));

        var (code, _, errors) = await Run([.. common, "--epochs", "1"]);

        code.Should().Be(Sample.CannotWrite);
        errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should()
            .Be($"error: Cannot write '{Path.Combine(run, "config.json")}': a folder of that name is in the way. It is unchanged.");
        Temporaries(run).Should().BeEmpty();
        File.Exists(Path.Combine(run, "last.ckpt")).Should().BeFalse("nothing was trained");
    }

    [Fact]
    public async Task Divergence_exits_3_naming_epoch_and_step_and_keeps_the_last_good_checkpoint()
    {
        var (_, experiments, common) = TinyRun("nan", train: 192, test: 64);
        (await Run([.. common, "--epochs", "1"])).Code.Should().Be(Sample.Ok);
        var run = Path.Combine(experiments, "nan");
        var checkpoint = Path.Combine(run, "last.ckpt");
        var before = Hash(checkpoint);

        var (code, output, errors) = await Run([.. common, "--epochs", "2", "--resume", "--lr", "1e6"]);

        code.Should().Be(Sample.Diverged, output);
        output.Should().Contain("--lr 1000000 (the run had 0.1)", "the new learning rate applies");
        errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should()
            .MatchRegex(@"^error: The training loss became NaN or infinite at epoch 1 \(0-based\), step \d+\. .*; '.*last\.ckpt' holds the last good epoch\.$");
        Hash(checkpoint).Should().Be(before);
    }

    [Fact]
    public async Task Anything_unexpected_exits_70_with_one_line_and_a_log_of_the_stack()
    {
        var (_, experiments, common) = TinyRun("bug", train: 128, test: 64);

        var (code, _, errors) = await Run(trainer => trainer.Callbacks.Add(new Faulty()), [.. common, "--epochs", "1"]);

        code.Should().Be(Sample.Internal);
        var line = errors.TrimEnd().Split('\n').Should().ContainSingle().Subject;
        line.Should().StartWith("error: unexpected InvalidOperationException: an injected fault (the details are in '").And.EndWith("'; please report it).");
        var log = line.Split('\'')[1];
        Path.GetDirectoryName(log).Should().Be(Path.Combine(experiments, "bug"), "the log goes into the run folder");
        File.ReadAllText(log).Should().Contain("an injected fault").And.Contain("at DTSKD.Samples.Cifar100.Tests.RunFaultTests.Faulty.OnEpochEnd");
    }

    [Fact]
    public async Task A_run_removes_the_temporary_files_a_killed_run_left_and_nothing_else()
    {
        var (_, experiments, common) = TinyRun("litter", train: 128, test: 64);
        (await Run([.. common, "--epochs", "1"])).Code.Should().Be(Sample.Ok);
        var run = Path.Combine(experiments, "litter");
        var stale = new[] { $".last.ckpt.{Guid.NewGuid():N}.tmp", $".config.json.{Guid.NewGuid():N}.tmp" }.Select(n => Path.Combine(run, n)).ToList();
        stale.ForEach(f => File.WriteAllBytes(f, new byte[1 << 20]));
        var mine = Path.Combine(run, ".my-notes.tmp");
        File.WriteAllText(mine, "not the sample's");

        var (code, _, _) = await Run([.. common, "--epochs", "2", "--resume"]);

        code.Should().Be(Sample.Ok);
        stale.Should().OnlyContain(f => !File.Exists(f));
        File.Exists(mine).Should().BeTrue();
    }

    [Fact]
    public async Task A_batch_above_the_training_set_is_refused_before_anything_is_written_and_too_many_threads_warn()
    {
        var (_, experiments, common) = TinyRun("big", train: 128, test: 64, batch: 129);
        var threads = (Environment.ProcessorCount + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);

        var (code, output, errors) = await Run([.. common, "--epochs", "1", "--threads", threads]);

        code.Should().Be(Sample.BadArguments);
        output.Should().Contain($"warning: --threads {threads} is more than this machine's {Environment.ProcessorCount} cores");
        errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should().Be("error: --batch-size 129 is larger than the training set (128 samples); at most 128.");
        Directory.Exists(experiments).Should().BeFalse("the folder made to hold the lock is removed");
    }

    [Fact]
    public async Task A_batch_whose_step_cannot_fit_in_memory_is_refused_before_training()
    {
        var experiments = Path.Combine(Dir.FullName, "experiments");

        // The reference width on all 60,000 Fashion-MNIST images at once: hundreds of gigabytes of activations.
        var (code, _, errors) = await Run("--data-type", "fashion-mnist", "--batch-size", "60000", "--epochs", "1", "--precision", "fp32", "--device", "cpu", "--experiments-dir", experiments);

        code.Should().Be(Sample.BadArguments);
        errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should()
            .MatchRegex(@"^error: --batch-size 60000 needs about \d+ GB for a training step of 1x28x28 images with this model; [\d.]+ GB of memory is available\. Use a batch of at most about \d+\.$");
        Directory.Exists(experiments).Should().BeFalse();
    }

    [Fact]
    public async Task Unreadable_files_are_named_as_unreadable_not_as_misfits()
    {
        var data = WriteCifar100(64, 32);
        var garbage = Path.Combine(Dir.FullName, "weights.pt");
        await File.WriteAllTextAsync(garbage, "not a pickle");
        var fakeCheckpoint = Path.Combine(Dir.FullName, "run.ckpt");
        await File.WriteAllTextAsync(fakeCheckpoint, "DTSKDCKP but no more");
        var noArchive = Directory.CreateDirectory(Path.Combine(Dir.FullName, "bad-archive")).FullName;
        await File.WriteAllBytesAsync(Path.Combine(noArchive, "cifar-100-binary.tar.gz"), new byte[1000]);
        var half = Directory.CreateDirectory(Path.Combine(Dir.FullName, "half", "cifar-100-binary")).FullName;
        File.Copy(Path.Combine(data, "cifar-100-binary", "train.bin"), Path.Combine(half, "train.bin"));

        foreach (var (args, message) in new (string[], string)[]
                 {
                     (["evaluate", "--weights", garbage, "--data-path", data], $"error: '{garbage}' cannot be read as PyTorch weights (.pt/.pth/.bin from torch.save, or .safetensors): "),
                     (["evaluate", "--weights", fakeCheckpoint, "--data-path", data], $"error: '{fakeCheckpoint}' cannot be read as a DTSKD.Core checkpoint: "),
                     (["predict", "--weights", garbage, "--data-path", data, Dir.FullName], $"error: '{garbage}' cannot be read"),
                     (["--data-path", noArchive, "--no-download", "--experiments-dir", Path.Combine(Dir.FullName, "e1")],
                         $"error: CIFAR-100 is not extracted in '{noArchive}', and '{Path.Combine(noArchive, "cifar-100-binary.tar.gz")}' is not its archive (1,000 bytes, expected 168,513,733)"),
                     (["--data-path", Path.Combine(Dir.FullName, "half"), "--experiments-dir", Path.Combine(Dir.FullName, "e2")],
                         $"error: CIFAR-100 in '{half}' is incomplete: test.bin is missing (train.bin is there)."),
                 })
        {
            var (code, _, errors) = await Run(args);
            code.Should().Be(Sample.Failed, string.Join(' ', args));
            errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should().StartWith(message);
        }
    }

    [Fact]
    public async Task Predict_names_a_folder_given_as_an_image()
    {
        var (_, experiments, common) = TinyRun("folder", train: 128, test: 64);
        (await Run([.. common, "--epochs", "1"])).Code.Should().Be(Sample.Ok);

        var (code, _, errors) = await Run("predict", "--run", Path.Combine(experiments, "folder"), Dir.FullName);

        code.Should().Be(Sample.Failed);
        errors.TrimEnd().Should().Be($"error: '{Dir.FullName}' is a folder; give image files (for every image in it: '{Path.Combine(Dir.FullName, "*")}').");
    }

    private sealed class Faulty : TrainerCallback
    {
        public override void OnEpochEnd(Trainer trainer, EpochMetrics metrics) => throw new InvalidOperationException("an injected fault");
    }
}
