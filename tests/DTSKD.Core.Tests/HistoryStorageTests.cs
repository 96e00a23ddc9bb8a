using DTSKD.Core.Training;

namespace DTSKD.Core.Tests;

public sealed class HistoryStorageTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-history-");

    public void Dispose() => _dir.Delete(recursive: true);

    /// <summary>Three epochs of reads and writes for the same samples; returns every target the teacher gave.</summary>
    private static List<float[]> Exercise(HistoricalTeacher teacher, int seed)
    {
        manual_seed(seed);
        var targets = new List<float[]>();
        using var labels = randint(0, teacher.ClassCount, [6], ScalarType.Int64);
        for (var epoch = 0; epoch < 3; epoch++)
        {
            foreach (var start in new[] { 0, 6 })
            {
                using var scope = NewDisposeScope();
                var idx = arange(start, start + 6, ScalarType.Int64);
                targets.Add(teacher.SoftTargets(idx, labels, 0.4).data<float>().ToArray());
                var heads = Enumerable.Range(0, teacher.HeadCount).Select(_ => randn(6, teacher.ClassCount).mul(3)).ToArray();
                using var output = new MultiBranchOutput(heads[0], heads[1..]);
                teacher.Update(idx, output);
            }
        }

        return targets;
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float16)]
    public void Top_k_with_k_equal_to_the_class_count_gives_exactly_the_dense_targets(ScalarType type)
    {
        using var dense = new HistoricalTeacher(12, 7, 3, storage: new HistoryStorage { ValueType = type });
        using var topK = new HistoricalTeacher(12, 7, 3, storage: new HistoryStorage { ValueType = type, TopK = 7 });

        var a = Exercise(dense, 5);
        var b = Exercise(topK, 5);

        b.Should().HaveCount(a.Count);
        for (var i = 0; i < a.Count; i++)
        {
            b[i].Should().Equal(a[i], $"call {i}: top-{7} of 7 classes stores every probability");
        }
    }

    [Fact]
    public void A_top_k_row_keeps_the_k_largest_and_spreads_the_rest_evenly()
    {
        using var teacher = new HistoricalTeacher(4, 5, 1, storage: new HistoryStorage { TopK = 2 });
        using var idx = tensor(new long[] { 2 });
        using var labels = tensor(new long[] { 0 });
        teacher.SoftTargets(idx, labels, 1.0).Dispose();
        double[] logits = [3.0, 1.0, 0.0, -1.0, 2.0];
        using (var output = new MultiBranchOutput(TestTensors.ToTensor([logits]), []))
        {
            teacher.Update(idx, output);
        }

        var p = Reference.Softmax([logits])[0];
        using var row = teacher.Read(0, idx);
        var stored = TestTensors.ToArrays(row)[0];
        var rest = (1 - p[0] - p[4]) / 3;
        stored.Should().Equal([p[0], rest, rest, rest, p[4]], (x, y) => Math.Abs(x - y) < 1e-6);
        stored.Sum().Should().BeApproximately(1, 1e-6);
    }

    [Fact]
    public void Memory_follows_the_storage_and_class_indices_use_the_smallest_type()
    {
        using var dense = new HistoricalTeacher(100, 10, 4);
        using var top3 = new HistoricalTeacher(100, 10, 4, storage: HistoryStorage.TopKFloat16(3));
        dense.MemoryBytes.Should().Be(4L * 100 * 10 * 4);
        top3.MemoryBytes.Should().Be(4L * 100 * 3 * (2 + 1), "float16 values and byte class indices for 10 classes");
        HistoryStorage.TopKFloat16(3).BytesFor(100, 10, 4).Should().Be(top3.MemoryBytes);
        HistoryStorage.ClassIndexType(256).Should().Be(ScalarType.Byte);
        HistoryStorage.ClassIndexType(1000).Should().Be(ScalarType.Int16);
        HistoryStorage.ClassIndexType(40_000).Should().Be(ScalarType.Int32);
        HistoryStorage.TopKFloat16(5).BytesFor(1_281_167, 1000, 4).Should().Be(1_281_167L * 4 * 5 * 4, "ImageNet-1k in 102.5 MB");

        ((Action)(() => new HistoricalTeacher(10, 5, 2, storage: new HistoryStorage { TopK = 6 }))).Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "TopK" && e.Message.Contains("1..5"));
        ((Action)(() => new HistoricalTeacher(10, 5, 2, storage: new HistoryStorage { ValueType = ScalarType.Int32 }))).Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "ValueType");
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData(3, false)]
    [InlineData(null, true)]
    [InlineData(3, true)]
    public void Every_storage_mode_saves_and_loads_and_rejects_another_mode(int? k, bool onHost)
    {
        var storage = new HistoryStorage { TopK = k, ValueType = k is null ? ScalarType.Float32 : ScalarType.Float16, OnHost = onHost };
        using var teacher = new HistoricalTeacher(12, 7, 3, storage: storage);
        Exercise(teacher, 9);
        using var buffer = new MemoryStream();
        teacher.Save(buffer);

        using var twin = new HistoricalTeacher(12, 7, 3, storage: storage);
        twin.Load(new MemoryStream(buffer.ToArray()));
        Exercise(twin, 10).Should().BeEquivalentTo(Exercise(teacher, 10), o => o.WithStrictOrdering(), "the same memory gives the same targets");

        using var other = new HistoricalTeacher(12, 7, 3, storage: storage with { TopK = k is null ? 2 : null });
        ((Action)(() => other.Load(new MemoryStream(buffer.ToArray())))).Should().Throw<InvalidDataException>().WithMessage("The saved historical teacher is*; this one is*");
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(null, true)]
    [InlineData(1, true)]
    public void Training_resumes_exactly_with_every_storage_mode(int? k, bool onHost)
    {
        using var train = TrainerTests.Halves(64, 51);
        using var test = TrainerTests.Halves(32, 52);
        var options = new DualTeacherLossOptions { History = new HistoryStorage { TopK = k, ValueType = ScalarType.Float16, OnHost = onHost } };
        TrainingResult Run(string? dir, int modelSeed, string? resume, CancellationTokenSource? stop = null)
        {
            manual_seed(modelSeed);
            using var model = Models.ResNetDtskd.ResNet18(TrainerTests.TinyModel);
            using var loss = DualTeacherLoss.For(model, train.Count, options);
            using var trainer = new Trainer(model, loss, train, test, new Data.PadCropFlip([0.4], [0.3], padding: 1), new TrainerOptions
            {
                Epochs = 2, BatchSize = 16, LearningRate = 0.05, Milestones = [], LogInterval = 2, Seed = 3, CheckpointDirectory = dir,
            });
            return InterruptedRun.Run(trainer, stop, resume);
        }

        var full = Run(null, 1, null);
        var dir = Path.Combine(_dir.FullName, $"{k}-{onHost}");
        using var cts = new CancellationTokenSource();
        Run(dir, 1, null, cts).Cancelled.Should().BeTrue();
        var resumed = Run(null, 8, Path.Combine(dir, "last.ckpt"));

        resumed.Metrics.Should().BeEquivalentTo(full.Metrics, o => o.WithStrictOrdering().Excluding(m => m.ImagesPerSecond).Excluding(m => m.TrainSeconds).Excluding(m => m.EpochSeconds));
    }
}
