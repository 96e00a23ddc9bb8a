using System.Text.Json;
using DTSKD.Core.Data;
using DTSKD.Core.Images;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using SkiaSharp;
using DTSKD.Core.Deployment;

namespace DTSKD.Core.Tests.Images;

public sealed class ImageFolderTests : IDisposable
{
    private static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "TestData", "images");
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-folder-");

    public void Dispose() => _dir.Delete(recursive: true);

    private string Cache => Path.Combine(_dir.FullName, "cache");

    private ImageFolderOptions Options(ImageFolderMode mode = ImageFolderMode.Cached, int size = 28, int channels = 1, int workers = 2) => new()
    {
        ImageSize = size, Channels = channels, Mode = mode, CacheDirectory = Cache, Workers = workers, Augmentation = ImageFolderAugmentation.PadCropFlip,
    };

    private static byte[] Bytes(IImageSource source, Tensor order, int batchSize)
    {
        using var reader = source.OpenReader(CPU);
        var all = new List<byte>();
        foreach (var batch in reader.Read(order, batchSize))
        {
            using var _ = batch;
            all.AddRange(batch.Images.data<byte>().ToArray());
            all.AddRange(batch.Indices.data<long>().ToArray().SelectMany(BitConverter.GetBytes));
            all.AddRange(batch.Labels.data<long>().ToArray().SelectMany(BitConverter.GetBytes));
        }

        return [.. all];
    }

    [Fact]
    public void Classes_and_samples_follow_torchvisions_imagefolder_with_hidden_and_other_files_skipped()
    {
        // The tree of folder-spec.txt, and what torchvision 0.14 made of it (eng/torchvision-imagefolder-check.py).
        var root = Path.Combine(_dir.FullName, "tree");
        var spec = File.ReadAllLines(Path.Combine(Fixtures, "folder-spec.txt")).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        var (pixels, _) = FashionFolder.Image(0);
        foreach (var rel in spec)
        {
            var path = Path.Combine(root, rel);
            if (ImageDecoder.Extensions.Any(e => rel.EndsWith(e, StringComparison.OrdinalIgnoreCase)))
            {
                FashionFolder.Write(path, pixels, 28, 28, SKEncodedImageFormat.Png);
            }
            else
            {
                File.WriteAllText(path, "not an image");
            }
        }

        using var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures, "torchvision-imagefolder.json")));
        var classes = expected.RootElement.GetProperty("classes").EnumerateArray().Select(c => c.GetString()!).ToList();
        var samples = expected.RootElement.GetProperty("samples").EnumerateArray().Select(s => (Path: s[0].GetString()!, Label: s[1].GetInt32())).ToList();

        var scan = ImageFolderScan.Read(root, holdOutFraction: 0, seed: 1);

        scan.Layout.Should().Be(ImageFolderLayout.HoldOut);
        scan.Classes.Should().Equal(classes, "the same class-to-index map");
        scan.Train.Select(e => (e.RelativePath, e.Label)).Should().Equal(
            samples.Where(s => !s.Path.Split('/').Any(p => p.StartsWith('.'))), "torchvision's samples, in its order, without the hidden ones");
        scan.HiddenSkipped.Should().Be(2, ".hidden.png and .thumbs/t.png");
        scan.OtherFilesSkipped.Should().Be(2, "notes.txt and readme.md");
    }

    [Fact]
    public void Symbolic_links_are_followed_once_and_a_link_back_above_itself_is_noted_not_walked()
    {
        var root = SmallTree("photos");
        var extra = SmallTree("extra", "more");
        Directory.CreateSymbolicLink(Path.Combine(root, "bag", "loop"), "..");
        Directory.CreateSymbolicLink(Path.Combine(root, "bag", "outside"), Path.Combine(extra, "more"));
        Directory.CreateSymbolicLink(Path.Combine(root, "bag", "outside-again"), Path.Combine(extra, "more"));

        var scan = ImageFolderScan.Read(root, holdOutFraction: 0, seed: 1);

        // torchvision follows links: the outside folder's images are bag's, once; the loop would list coat's under bag.
        scan.Train.Where(e => e.Label == 0).Select(e => e.RelativePath).Should().Equal(
            "bag/0.png", "bag/1.png", "bag/outside/0.png", "bag/outside/1.png");
        scan.Train.Where(e => e.Label == 1).Should().HaveCount(2);
        scan.Notes.Should().BeEquivalentTo(
            $"'{Path.Combine(root, "bag", "loop")}' leads back to '{RealPath.Of(root)}', a folder above it (a symbolic-link cycle): not followed, nothing under it listed twice.",
            $"'{Path.Combine(root, "bag", "outside-again")}' is '{Path.Combine(root, "bag", "outside")}' again (a symbolic link): its images are listed once.");
    }

    [Fact]
    public void A_file_reachable_from_two_classes_or_both_splits_is_refused_with_both_paths()
    {
        var root = SmallTree("shared");
        Directory.CreateSymbolicLink(Path.Combine(root, "coat", "bags"), Path.Combine(root, "bag"));
        var act = () => ImageFolderScan.Read(root, holdOutFraction: 0, seed: 1);
        var refused = act.Should().Throw<ImageFolderException>().Which;
        refused.Problems.Should().Equal(
            $"'{Path.Combine(root, "coat", "bags", "0.png")}' is the same file as '{Path.Combine(root, "bag", "0.png")}' (through a symbolic link): one image cannot be in class 'bag' and in class 'coat'.",
            $"'{Path.Combine(root, "coat", "bags", "1.png")}' is the same file as '{Path.Combine(root, "bag", "1.png")}' (through a symbolic link): one image cannot be in class 'bag' and in class 'coat'.");
        refused.Summary.Should().Be($"2 files in '{root}' can be reached from two classes or splits (listed above): remove the links, or keep one copy where it belongs.");

        var splits = Path.Combine(_dir.FullName, "splits");
        Directory.CreateDirectory(splits);
        Directory.Move(SmallTree("t"), Path.Combine(splits, "train"));
        Directory.Move(SmallTree("v"), Path.Combine(splits, "val"));
        File.CreateSymbolicLink(Path.Combine(splits, "val", "bag", "seen.png"), Path.Combine(splits, "train", "bag", "0.png"));
        act = () => ImageFolderScan.Read(splits, holdOutFraction: 0, seed: 1);
        act.Should().Throw<ImageFolderException>().Which.Problems.Should().ContainSingle()
            .Which.Should().EndWith("one image cannot be in both the training and the test split.");
    }

    [Fact]
    public void A_pass_removes_the_pixel_files_of_dead_writers_and_leaves_a_live_writer_s_alone()
    {
        var root = SmallTree("cached");
        Directory.CreateDirectory(Cache);
        var dead = Path.Combine(Cache, $".{new string('a', 32)}.pixels.{Guid.NewGuid():N}.tmp");
        File.WriteAllBytes(dead, new byte[4096]);
        var live = Path.Combine(Cache, $".{new string('b', 32)}.pixels.{Guid.NewGuid():N}.tmp");
        using (var writer = new FileStream(live, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None))
        {
            writer.Write(new byte[4096]);
            using var splits = ImageFolder.Open(root, Options());
            File.Exists(dead).Should().BeFalse("nobody holds it: its writer was killed");
            File.Exists(live).Should().BeTrue("its writer holds it locked");
        }

        Directory.GetFiles(Cache, "*.tmp").Should().Equal([live], "a pass leaves no temporary file of its own");
    }

    [Fact]
    public void A_cache_folder_that_cannot_be_written_is_one_line_naming_it_and_the_setting()
    {
        var root = SmallTree("unwritable");
        var blocker = Path.Combine(_dir.FullName, "a-file");
        File.WriteAllText(blocker, "not a folder");
        var cache = Path.Combine(blocker, "cache");
        var options = Options();
        options.CacheDirectory = cache;
        var act = () => ImageFolder.Open(root, options);
        act.Should().Throw<ImageFolderException>().Which.Summary.Should()
            .Be($"The image cache '{cache}' cannot be written ('{blocker}' is a file, not a folder): give a writable folder (ImageFolderOptions.CacheDirectory, the sample's --image-cache).");
    }

    /// <summary>A folder with classes bag and coat (or the given ones), two real PNGs each.</summary>
    private string SmallTree(string name, params string[] classes)
    {
        var root = Path.Combine(_dir.FullName, name);
        var (pixels, _) = FashionFolder.Image(0);
        foreach (var cls in classes.Length > 0 ? classes : ["bag", "coat"])
        {
            for (var i = 0; i < 2; i++)
            {
                FashionFolder.Write(Path.Combine(root, cls, $"{i}.png"), pixels, 28, 28, SKEncodedImageFormat.Png);
            }
        }

        return root;
    }

    [Fact]
    public void A_stratified_hold_out_is_seeded_and_keeps_every_class_on_both_sides()
    {
        var root = Path.Combine(_dir.FullName, "flat");
        for (var i = 0; i < 60; i++)
        {
            var (pixels, label) = FashionFolder.Image(i);
            FashionFolder.Write(Path.Combine(root, $"c{label}", $"{i:D3}.png"), pixels, 28, 28, SKEncodedImageFormat.Png);
        }

        var a = ImageFolderScan.Read(root, 0.25, seed: 5);
        var b = ImageFolderScan.Read(root, 0.25, seed: 5);
        var c = ImageFolderScan.Read(root, 0.25, seed: 6);

        a.Test.Select(e => e.Path).Should().Equal(b.Test.Select(e => e.Path), "the same seed, the same split");
        a.Test.Select(e => e.Path).Should().NotEqual(c.Test.Select(e => e.Path));
        foreach (var group in a.Train.Concat(a.Test).GroupBy(e => e.Label))
        {
            var held = a.Test.Count(e => e.Label == group.Key);
            held.Should().Be((int)Math.Clamp(Math.Round(0.25 * group.Count(), MidpointRounding.AwayFromZero), 1, group.Count() - 1), $"class {group.Key}");
        }

        a.Train.Select(e => e.Path).Should().BeInAscendingOrder(StringComparer.Ordinal, "both splits keep the folder's order");
    }

    [Fact]
    public void Training_from_a_folder_equals_training_from_the_same_images_in_memory_cached_or_streamed()
    {
        var root = FashionFolder.Splits(Path.Combine(_dir.FullName, "fashion"), 192, 64);
        TrainingResult Train(IImageSource train, IImageSource test, IBatchAugmentation augmentation)
        {
            manual_seed(3);
            using var model = MultiBranchModels.resnet18_dtskd(numClasses: 10, inputChannels: 1, baseWidth: 16, neckWidth: 16);
            using var loss = DualTeacherLoss.For(model, train.Count, DualTeacherLossOptions.SmallData());
            using var trainer = new Trainer(model, loss, train, test, augmentation, new TrainerOptions { Epochs = 2, BatchSize = 32, EvalBatchSize = 64, Milestones = [], Seed = 4, LogInterval = 100 });
            return trainer.Run();
        }

        using var cached = ImageFolder.Open(root, Options(ImageFolderMode.Cached));
        using var streamed = ImageFolder.Open(root, Options(ImageFolderMode.Streaming));
        using var memoryTrain = FashionFolder.InFolderOrder(0, 192);
        using var memoryTest = FashionFolder.InFolderOrder(192, 64);
        cached.Layout.Should().Be(ImageFolderLayout.TrainTest);
        cached.Mode.Should().Be(ImageFolderMode.Cached);
        streamed.Mode.Should().Be(ImageFolderMode.Streaming);
        cached.ClassNames.Should().Equal(Enumerable.Range(0, 10).Select(i => $"c{i}"));
        ((ImageDataset)cached.Train).Images.data<byte>().ToArray().Should().Equal(memoryTrain.Images.data<byte>().ToArray(), "the PNGs hold the IDX pixels");

        var augmentation = new PadCropFlip(cached.Preprocessing.Mean, cached.Preprocessing.Std, padding: 3);
        var fromMemory = Train(memoryTrain, memoryTest, augmentation);
        var fromCache = Train(cached.Train, cached.Test, augmentation);
        var fromStream = Train(streamed.Train, streamed.Test, augmentation);

        static IEnumerable<object> Figures(TrainingResult r) => r.Metrics.Select(m => (object)new { m.TrainLoss, m.TrainTop1, Test = string.Join(",", m.TestTop1), m.TestLoss });
        Figures(fromCache).Should().Equal(Figures(fromMemory), "to the digit");
        Figures(fromStream).Should().Equal(Figures(fromMemory), "to the digit");
    }

    [Fact]
    public void Cached_and_streaming_sources_give_identical_batches_whatever_the_thread_count()
    {
        var root = FashionFolder.Splits(Path.Combine(_dir.FullName, "fashion"), 100, 20);
        using var cached = ImageFolder.Open(root, Options(ImageFolderMode.Cached, size: 20, channels: 3, workers: 1));
        using var streamed1 = ImageFolder.Open(root, Options(ImageFolderMode.Streaming, size: 20, channels: 3, workers: 1));
        using var streamed2 = ImageFolder.Open(root, Options(ImageFolderMode.Streaming, size: 20, channels: 3, workers: 2));
        using var order = new BatchSampler(100, 16, seed: 9).Order(0);

        var expected = Bytes(cached.Train, order, 16);
        Bytes(streamed1.Train, order, 16).Should().Equal(expected);
        Bytes(streamed2.Train, order, 16).Should().Equal(expected);

        // A cache built on two threads is the cache built on one.
        var otherCache = Path.Combine(_dir.FullName, "cache2");
        var twoThreads = Options(ImageFolderMode.Cached, size: 20, channels: 3, workers: 2);
        twoThreads.CacheDirectory = otherCache;
        using var cached2 = ImageFolder.Open(root, twoThreads);
        File.ReadAllBytes(cached2.CacheFile!).Should().Equal(File.ReadAllBytes(cached.CacheFile!));
        cached2.Preprocessing.Mean.Should().Equal(cached.Preprocessing.Mean, "the statistics do not depend on the threads either");
    }

    [Fact]
    public void A_run_on_a_streamed_folder_resumes_exactly_inside_an_epoch()
    {
        var root = FashionFolder.Splits(Path.Combine(_dir.FullName, "fashion"), 128, 32);
        using var folder = ImageFolder.Open(root, Options(ImageFolderMode.Streaming));
        var dir = Path.Combine(_dir.FullName, "run");
        TrainingResult Train(string? checkpoints, int modelSeed, CancellationTokenSource? stop, string? resume)
        {
            manual_seed(modelSeed);
            using var model = MultiBranchModels.resnet18_dtskd(numClasses: 10, inputChannels: 1, baseWidth: 16, neckWidth: 16);
            using var loss = DualTeacherLoss.For(model, folder.Train.Count, DualTeacherLossOptions.SmallData());
            using var trainer = new Trainer(model, loss, folder.Train, folder.Test, folder.Preprocessing,
                new TrainerOptions { Epochs = 2, BatchSize = 16, EvalBatchSize = 32, Milestones = [], Seed = 2, LogInterval = 2, CheckpointDirectory = checkpoints });
            return InterruptedRun.Run(trainer, stop, resume);
        }

        var full = Train(null, 1, null, null);
        using var stop = new CancellationTokenSource();
        Train(dir, 1, stop, null).Cancelled.Should().BeTrue();
        var resumed = Train(null, 50, null, Path.Combine(dir, "last.ckpt"));

        resumed.Metrics.Should().BeEquivalentTo(full.Metrics, o => o.WithStrictOrdering().Excluding(m => m.ImagesPerSecond).Excluding(m => m.TrainSeconds).Excluding(m => m.EpochSeconds));
    }

    [Fact]
    public void Unusable_images_are_all_named_before_training_or_left_out_when_asked()
    {
        var root = FashionFolder.Splits(Path.Combine(_dir.FullName, "fashion"), 60, 20);
        var empty = Path.Combine(root, "train", "c0", "empty.png");
        File.WriteAllBytes(empty, []);
        var text = Path.Combine(root, "train", "c1", "text.jpg");
        File.WriteAllText(text, "not an image");
        var whole = Directory.GetFiles(Path.Combine(root, "train", "c2"))[0];
        var truncated = Path.Combine(root, "train", "c2", "truncated.png");
        File.WriteAllBytes(truncated, File.ReadAllBytes(whole)[..^40]);

        var act = () => ImageFolder.Open(root, Options());

        var refused = act.Should().Throw<ImageFolderException>().Which;
        refused.Problems.Should().HaveCount(3).And.Contain($"'{empty}' is empty (0 bytes).").And.Contain($"'{text}' is not an image SkiaSharp can read (PNG, JPEG, BMP, GIF, WebP).")
            .And.Contain(p => p.StartsWith($"'{truncated}' is truncated", StringComparison.Ordinal));
        refused.Summary.Should().StartWith("3 of 83 images in").And.Contain("SkipBadImages");
        Directory.GetFiles(Cache).Should().NotContain(f => f.EndsWith(".tmp", StringComparison.Ordinal), "nothing half-written");
        var pass = Directory.GetFiles(Cache, "*.pixels").Should().ContainSingle("the good images' pass is complete and kept").Subject;
        var written = File.GetLastWriteTimeUtc(pass);

        var skip = Options();
        skip.SkipBadImages = true;
        using var kept = ImageFolder.Open(root, skip);
        kept.CacheFile.Should().Be(pass);
        File.GetLastWriteTimeUtc(pass).Should().Be(written, "leaving the bad images out needs no second pass");
        kept.Train.Count.Should().Be(60);
        kept.BadImages.Select(b => b.Path).Should().BeEquivalentTo([empty, text, truncated]);
        using var memory = FashionFolder.InFolderOrder(0, 60);
        ((ImageDataset)kept.Train).Images.data<byte>().ToArray().Should().Equal(memory.Images.data<byte>().ToArray(), "the good images, compacted, in order");
    }

    [Fact]
    public void A_pass_with_bad_images_left_out_serves_the_folder_given_by_another_path()
    {
        var root = FashionFolder.Splits(Path.Combine(_dir.FullName, "elsewhere"), 60, 20);
        var empty = Path.Combine(root, "train", "c0", "empty.png");
        File.WriteAllBytes(empty, []);
        var skip = Options();
        skip.SkipBadImages = true;

        // First as a path relative to this process's directory (as a user types it), then absolute (as a run's
        // config.json records it, and evaluate --run reads it from any directory).
        var relative = Path.GetRelativePath(Environment.CurrentDirectory, root);
        relative.Should().NotStartWith("/");
        using (var first = ImageFolder.Open(relative, skip))
        {
            first.BadImages.Select(b => b.Path).Should().Equal(Path.Combine(relative, "train", "c0", "empty.png"));
        }

        var pass = Directory.GetFiles(Cache, "*.pixels").Should().ContainSingle().Subject;
        var written = File.GetLastWriteTimeUtc(pass);
        using var again = ImageFolder.Open(root, skip);

        again.CacheFile.Should().Be(pass);
        File.GetLastWriteTimeUtc(pass).Should().Be(written, "the same folder's pass, found again");
        again.BadImages.Select(b => b.Path).Should().Equal([empty], "named as this scan reaches it");
        (again.Train.Count, again.Test.Count).Should().Be((60, 20));
        using var memory = FashionFolder.InFolderOrder(0, 60);
        ((ImageDataset)again.Train).Images.data<byte>().ToArray().Should().Equal(memory.Images.data<byte>().ToArray());
    }

    [Fact]
    public void A_folder_changed_after_its_cache_was_built_is_decoded_anew()
    {
        var root = FashionFolder.Splits(Path.Combine(_dir.FullName, "fashion"), 40, 10);
        string first;
        using (var before = ImageFolder.Open(root, Options()))
        {
            first = before.CacheFile!;
        }

        // Opened again unchanged: the same cache, untouched.
        var written = File.GetLastWriteTimeUtc(first);
        using (var again = ImageFolder.Open(root, Options()))
        {
            again.CacheFile.Should().Be(first);
            File.GetLastWriteTimeUtc(first).Should().Be(written);
        }

        // One image replaced by another: a new cache, the old one gone, never a mix.
        var target = Directory.GetFiles(Path.Combine(root, "train", "c0")).Order(StringComparer.Ordinal).First();
        var (other, _) = FashionFolder.Image(500);
        FashionFolder.Write(target, other, 28, 28, SKEncodedImageFormat.Png);
        File.SetLastWriteTimeUtc(target, DateTime.UtcNow.AddMinutes(1));
        using var after = ImageFolder.Open(root, Options());
        after.CacheFile.Should().NotBe(first);
        File.Exists(first).Should().BeFalse();
        ((ImageDataset)after.Train).Images[0].data<byte>().ToArray().Should().Equal(other);
    }

    [Theory]
    [InlineData("none", "has no class folders")]
    [InlineData("one", "has one class folder ('only'); a classifier needs at least two.")]
    [InlineData("empty-class", "has no images (")]
    [InlineData("missing", "does not exist.")]
    public void A_folder_without_two_classes_of_images_is_one_clear_line(string kind, string message)
    {
        var root = Path.Combine(_dir.FullName, kind);
        var (pixels, _) = FashionFolder.Image(0);
        switch (kind)
        {
            case "none":
                FashionFolder.Write(Path.Combine(root, "loose.png"), pixels, 28, 28, SKEncodedImageFormat.Png);
                break;
            case "one":
                FashionFolder.Write(Path.Combine(root, "only", "a.png"), pixels, 28, 28, SKEncodedImageFormat.Png);
                break;
            case "empty-class":
                FashionFolder.Write(Path.Combine(root, "full", "a.png"), pixels, 28, 28, SKEncodedImageFormat.Png);
                Directory.CreateDirectory(Path.Combine(root, "hollow"));
                File.WriteAllText(Path.Combine(root, "hollow", "notes.txt"), "no images");
                break;
        }

        var act = () => ImageFolder.Open(root, Options());

        act.Should().Throw<ImageFolderException>().Which.Problems.Should().ContainSingle().Which.Should().Contain(message);
    }

    [Fact]
    public void An_image_above_the_pixel_cap_is_refused()
    {
        var root = FashionFolder.Splits(Path.Combine(_dir.FullName, "fashion"), 60, 20);
        var bomb = Path.Combine(root, "train", "c0", "bomb.png");
        FashionFolder.Write(bomb, new byte[300 * 300], 300, 300, SKEncodedImageFormat.Png);
        var options = Options();
        options.MaxPixels = 50_000;

        var act = () => ImageFolder.Open(root, options);

        act.Should().Throw<ImageFolderException>().Which.Problems[0].Should().Be($"'{bomb}' is 300x300 pixels, more than the 50,000 allowed (a possible decompression bomb).");
    }
}
