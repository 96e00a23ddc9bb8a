using System.Globalization;

namespace DTSKD.Samples.Cifar100.Tests;

/// <summary>The sample on a folder of one's own PNG and JPEG images: train, evaluate, export, predict; bad images named.</summary>
public sealed class FolderRunTests : SampleTestBase
{
    private string[] Common(string folder, string name) =>
    [
        "--data-type", "folder", "--data-path", folder, "--image-cache", Path.Combine(Dir.FullName, "cache"), "--experiments-dir", Path.Combine(Dir.FullName, "experiments"),
        "--experiments-name", name, "--base-width", "16", "--neck-width", "16", "--batch-size", "24", "--device", "cpu", "--precision", "fp32", "--log-interval", "2",
    ];

    [Fact]
    public async Task A_folder_of_pngs_and_jpegs_trains_evaluates_exports_and_predicts_with_its_class_names()
    {
        var folder = WriteImageFolder("photos");
        var (code, output, errors) = await Run([.. Common(folder, "photos"), "--epochs", "2", "--hskd", "0"]);

        code.Should().Be(Sample.Ok, output + errors);
        output.Should().Contain($"'{folder}': 3 classes, 72 training and 24 test images (TrainVal), cached.");
        var run = Path.Combine(Dir.FullName, "experiments", "photos");
        var config = ExperimentOutputs.ReadConfig(run);
        config.ClassNames.Should().Equal("class0", "class1", "class2");
        config.Mean.Should().HaveCount(3);
        var row = File.ReadAllLines(Path.Combine(run, "metrics.csv")).Select(l => l.Split(',')).ToList();
        var top1 = double.Parse(row[^1][Array.IndexOf(row[0], "test_top1_backbone")], CultureInfo.InvariantCulture);

        var (evaluated, evaluation, _) = await Run("evaluate", "--run", run);
        evaluated.Should().Be(Sample.Ok);
        evaluation.Should().Contain($"backbone  top-1 {top1.ToString("F2", CultureInfo.InvariantCulture)}%");

        (await Run("export", "--run", run)).Code.Should().Be(Sample.Ok);
        var image = Directory.GetFiles(Path.Combine(folder, "val", "class1")).Order(StringComparer.Ordinal).First();
        var (byRun, prediction, predictionErrors) = await Run("predict", "--run", run, "--top", "3", image);
        byRun.Should().Be(Sample.Ok, predictionErrors);
        prediction.Should().MatchRegex(@"class\d \d+\.\d\d%, class\d \d+\.\d\d%, class\d \d+\.\d\d%");
        var (byExport, exported, _) = await Run("predict", "--weights", Path.Combine(run, "backbone.pt"), "--run", run, "--top", "3", image);
        byExport.Should().Be(Sample.Ok);
        exported.Should().Be(prediction);
    }

    [Fact]
    public async Task Unusable_images_are_named_one_per_line_then_summed_up_or_skipped_and_recorded()
    {
        var folder = WriteImageFolder("broken", trainPerClass: 8, valPerClass: 4);
        var empty = Path.Combine(folder, "train", "class0", "empty.png");
        File.WriteAllBytes(empty, []);
        var text = Path.Combine(folder, "val", "class2", "notes.jpg");
        File.WriteAllText(text, "not an image");
        var experiments = Path.Combine(Dir.FullName, "experiments");

        var (code, _, errors) = await Run([.. Common(folder, "broken"), "--epochs", "1"]);

        code.Should().Be(Sample.Failed);
        errors.TrimEnd().Split('\n').Should().Equal(
            $"error: '{empty}' is empty (0 bytes).",
            $"error: '{text}' is not an image SkiaSharp can read (PNG, JPEG, BMP, GIF, WebP).",
            $"error: 2 of 38 images in '{folder}' cannot be used (listed above): fix or remove them, or skip them with --skip-bad-images.");
        Directory.Exists(experiments).Should().BeFalse("nothing of the run is written");

        var (skipped, output, skippedErrors) = await Run([.. Common(folder, "broken"), "--epochs", "1", "--skip-bad-images"]);

        skipped.Should().Be(Sample.Ok, output + skippedErrors);
        output.Should().Contain("left out 2 unusable images (skipped-images.txt)");
        File.ReadAllLines(Path.Combine(experiments, "broken", "skipped-images.txt")).Should().Equal(
            $"{empty}\tis empty (0 bytes)", $"{text}\tis not an image SkiaSharp can read (PNG, JPEG, BMP, GIF, WebP)");
    }

    [Fact]
    public async Task A_run_knows_its_folder_a_changed_one_is_refused_with_what_changed_and_a_moved_one_is_taken()
    {
        var folder = WriteImageFolder("known", trainPerClass: 8, valPerClass: 4);
        var (code, output, errors) = await Run([.. Common(folder, "known"), "--epochs", "1"]);
        code.Should().Be(Sample.Ok, output + errors);
        var run = Path.Combine(Dir.FullName, "experiments", "known");
        File.ReadAllLines(Path.Combine(run, "data-files.tsv")).Should().HaveCount(36).And.Contain(l => l.StartsWith("train\tclass0\t", StringComparison.Ordinal));
        ExperimentOutputs.ReadConfig(run).DataKey.Should().MatchRegex("^[0-9a-f]{32}$");
        Core.Training.TrainerCheckpoint.ReadSummary(Path.Combine(run, "last.ckpt")).DataKey.Should().Be(ExperimentOutputs.ReadConfig(run).DataKey, "every checkpoint records the folder's key");
        var (_, evaluated, _) = await Run("evaluate", "--run", run);

        // Moved whole (same files, same times): the run's folder still, given with --data-path.
        var moved = Path.Combine(Dir.FullName, "moved");
        Directory.Move(folder, moved);
        var (again, reevaluated, movedErrors) = await Run("evaluate", "--run", run, "--data-path", moved);
        again.Should().Be(Sample.Ok, movedErrors);
        reevaluated.Split('\n').Where(l => l.Contains("top-", StringComparison.Ordinal)).Should().Equal(
            evaluated.Split('\n').Where(l => l.Contains("top-", StringComparison.Ordinal)), "the same test images, the same figures");

        // Two files of a class renamed: the counts are equal, the files are not.
        var renamed = Directory.GetFiles(Path.Combine(moved, "train", "class1")).Order(StringComparer.Ordinal).Take(2).ToList();
        foreach (var file in renamed)
        {
            File.Move(file, Path.Combine(Path.GetDirectoryName(file)!, "renamed-" + Path.GetFileName(file)));
        }

        var (refused, _, refusal) = await Run("evaluate", "--run", run, "--data-path", moved);
        refused.Should().Be(Sample.Failed);
        refusal.Trim().Should().StartWith($"error: evaluate: the folder '{moved}' is not the one the run read: 2 added, 2 removed, 0 changed").And.NotContain("\n");
        refusal.Should().Contain($"'train/class1/renamed-{Path.GetFileName(renamed[0])}' added");

        var (resumed, _, resumeErrors) = await Run([.. Common(moved, "known"), "--resume", run, "--epochs", "2"]);
        resumed.Should().Be(Sample.Failed);
        resumeErrors.Trim().Should().StartWith($"error: cannot resume '{run}': the folder '{moved}' has changed: 2 added, 2 removed, 0 changed").And.NotContain("\n");
        File.ReadAllLines(Path.Combine(run, "metrics.csv")).Should().HaveCount(2, "nothing of the run changed");
    }

    [Theory]
    [InlineData("train", "at epoch [12], step [0-5]")]
    [InlineData("val", "after the last step of epoch 1, before its evaluation")]
    public async Task An_image_deleted_under_a_streaming_run_stops_it_checkpointed_at_the_last_finished_step_and_it_resumes_once_the_file_is_back(string split, string stopped)
    {
        var folder = WriteImageFolder("vanishing", trainPerClass: 16, valPerClass: 4);
        var args = Common(folder, "vanishing");
        args[Array.IndexOf(args, "--batch-size") + 1] = "8";
        var run = Path.Combine(Dir.FullName, "experiments", "vanishing");
        var victim = Directory.GetFiles(Path.Combine(folder, split, "class2")).Order(StringComparer.Ordinal).First();
        var (bytes, time) = (File.ReadAllBytes(victim), File.GetLastWriteTimeUtc(victim));

        // Deleted after the first step: the streaming reader meets the hole later in this epoch or the next (a training
        // file), or in the epoch's evaluation (a held-out one).
        var (code, output, errors) = await Run(
            trainer => trainer.Callbacks.Add(new AtStep(0, 1, () => File.Delete(victim))),
            [.. args, "--image-mode", "streaming", "--epochs", "2"]);

        code.Should().Be(Sample.Failed, output);
        var line = errors.Trim();
        line.Should().NotContain("\n").And.Contain(victim)
            .And.MatchRegex($"Training stopped {stopped}; '{System.Text.RegularExpressions.Regex.Escape(Path.Combine(run, "last.ckpt"))}' holds every step before it; put the data back as it was .* continue with --resume {System.Text.RegularExpressions.Regex.Escape(run)}\\.$");
        File.Exists(Path.Combine(run, "last.ckpt")).Should().BeTrue();

        // Put back as it was (the same bytes and time): the folder is the run's again, and the run finishes.
        File.WriteAllBytes(victim, bytes);
        File.SetLastWriteTimeUtc(victim, time);
        var (resumed, resumedOutput, resumeErrors) = await Run([.. args, "--image-mode", "streaming", "--resume", run, "--epochs", "2"]);
        resumed.Should().Be(Sample.Ok, resumeErrors);
        resumedOutput.Should().MatchRegex("Resuming '.*' at epoch [12], step [0-6]\\.");
        File.ReadAllLines(Path.Combine(run, "metrics.csv")).Should().HaveCount(3, "both epochs");
    }

    [Fact]
    public async Task A_single_image_above_the_pixel_cap_is_listed_above_the_summary()
    {
        var folder = WriteImageFolder("bomb", trainPerClass: 8, valPerClass: 4);
        var bomb = Path.Combine(folder, "train", "class1", "huge.png");
        File.WriteAllBytes(bomb, PngHeader(30_000, 30_000));

        var (code, _, errors) = await Run([.. Common(folder, "bomb"), "--epochs", "1"]);

        code.Should().Be(Sample.Failed);
        var lines = errors.TrimEnd().Split('\n');
        lines.Should().HaveCount(2, errors);
        lines[0].Should().StartWith($"error: '{bomb}' ").And.Contain("30000");
        lines[1].Should().Be($"error: 1 of 37 images in '{folder}' cannot be used (listed above): fix or remove them, or skip them with --skip-bad-images.");
    }

    [Fact]
    public async Task An_image_cache_that_cannot_be_written_is_one_line_naming_it_and_the_option()
    {
        var folder = WriteImageFolder("cacheless", trainPerClass: 4, valPerClass: 2);
        var blocker = Path.Combine(Dir.FullName, "a-file");
        await File.WriteAllTextAsync(blocker, "not a folder");
        var args = Common(folder, "cacheless");
        args[Array.IndexOf(args, "--image-cache") + 1] = Path.Combine(blocker, "cache");

        var (code, _, errors) = await Run([.. args, "--epochs", "1"]);

        code.Should().Be(Sample.Failed);
        errors.Trim().Should().Be($"error: The image cache '{Path.Combine(blocker, "cache")}' cannot be written ('{blocker}' is a file, not a folder): give a writable folder with --image-cache.");
        Directory.Exists(Path.Combine(Dir.FullName, "experiments")).Should().BeFalse();
    }

    /// <summary>A PNG that declares a size and holds no pixel data: 65 bytes that claim <paramref name="width"/> x <paramref name="height"/>.</summary>
    private static byte[] PngHeader(int width, int height)
    {
        var bytes = new List<byte> { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A };
        void Chunk(string type, byte[] data)
        {
            bytes.AddRange(BigEndian(data.Length));
            var body = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
            bytes.AddRange(body);
            bytes.AddRange(BigEndian((int)Crc32(body)));
        }

        Chunk("IHDR", [.. BigEndian(width), .. BigEndian(height), 8, 0, 0, 0, 0]);
        Chunk("IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
        Chunk("IEND", []);
        return [.. bytes];
    }

    private static byte[] BigEndian(int value) => [(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value];

    private static uint Crc32(byte[] data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
            }
        }

        return ~crc;
    }

    [Fact]
    public async Task Folder_options_and_folders_without_classes_are_one_clear_line()
    {
        var loose = Directory.CreateDirectory(Path.Combine(Dir.FullName, "loose")).FullName;
        await File.WriteAllTextAsync(Path.Combine(loose, "readme.txt"), "no classes here");

        foreach (var (args, exit, message) in new (string[], int, string)[]
                 {
                     (["--image-size", "64"], Sample.BadArguments, "error: --image-size applies to --data-type folder only."),
                     (["--data-type", "folder"], Sample.BadArguments, "error: --data-type folder needs --data-path: the folder that holds one folder of images per class."),
                     (["--data-type", "folder", "--data-path", loose, "--experiments-dir", Path.Combine(Dir.FullName, "e")], Sample.Failed,
                         $"error: '{loose}' has no class folders: put each class's images in a folder of its own"),
                 })
        {
            var (code, _, errors) = await Run(args);
            code.Should().Be(exit, string.Join(' ', args));
            errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should().StartWith(message);
        }
    }

    /// <summary>Does something to the run's data once, after one step.</summary>
    private sealed class AtStep(int epoch, int step, Action act) : Core.Training.TrainerCallback
    {
        public override void OnStepEnd(Core.Training.Trainer trainer, Core.Training.TrainingStep batch)
        {
            if (batch.Epoch == epoch && batch.Step == step)
            {
                act();
            }
        }
    }
}
