namespace DTSKD.Core.Tests;

public class HistoricalTeacherTests
{
    private static MultiBranchOutput Output(double[][] backbone, params double[][][] branches) =>
        new(TestTensors.ToTensor(backbone), branches.Select(b => TestTensors.ToTensor(b)).ToArray());

    [Fact]
    public void First_sight_gives_the_one_hot_label_whatever_alpha()
    {
        using var teacher = new HistoricalTeacher(sampleCount: 10, classCount: 4, headCount: 2);
        using var idx = tensor(new long[] { 3, 7 });
        using var labels = tensor(new long[] { 2, 0 });

        using var targets = teacher.SoftTargets(idx, labels, alpha: 0.25);

        targets.shape.Should().Equal(2, 2, 4);
        for (var h = 0; h < 2; h++)
        {
            TestTensors.ToArrays(targets[h]).Should().BeEquivalentTo(Reference.OneHot([2, 0], 4));
        }

        teacher.SeenCount().Should().Be(2);
        using var stored = teacher.Read(1, idx);
        TestTensors.ToArrays(stored).Should().BeEquivalentTo(Reference.OneHot([2, 0], 4));
    }

    [Fact]
    public void Update_stores_each_heads_softmax_and_the_next_read_mixes_it_with_the_label()
    {
        using var teacher = new HistoricalTeacher(10, 3, 2);
        using var idx = tensor(new long[] { 5, 1 });
        using var labels = tensor(new long[] { 0, 2 });
        var zb = new[] { new[] { 1.0, 2.0, 0.5 }, new[] { -1.0, 0.0, 3.0 } };
        var z1 = new[] { new[] { 0.3, 0.1, 0.2 }, new[] { 2.0, -2.0, 0.0 } };

        // Epoch e: read (one-hot), then write the heads' predictions.
        teacher.SoftTargets(idx, labels, 0.9).Dispose();
        using (var output = Output(zb, z1))
        {
            teacher.Update(idx, output);
        }

        // Epoch e + 1 reads what epoch e wrote.
        using var targets = teacher.SoftTargets(idx, labels, 0.6);
        var oneHot = Reference.OneHot([0, 2], 3);
        var expected0 = Reference.Mix(0.6, oneHot, Reference.Softmax(zb));
        var expected1 = Reference.Mix(0.6, oneHot, Reference.Softmax(z1));
        AssertClose(TestTensors.ToArrays(targets[0]), expected0, 1e-6);
        AssertClose(TestTensors.ToArrays(targets[1]), expected1, 1e-6);
        AssertClose(TestTensors.ToArrays(teacher.Read(0, idx)), Reference.Softmax(zb), 1e-6);
    }

    [Fact]
    public void Rows_of_other_samples_are_untouched_by_an_update()
    {
        using var teacher = new HistoricalTeacher(6, 3, 1);
        using var all = arange(6, ScalarType.Int64);
        using var labels = tensor(new long[] { 0, 1, 2, 0, 1, 2 });
        teacher.SoftTargets(all, labels, 1.0).Dispose();
        using var idx = tensor(new long[] { 4 });
        using (var output = Output([[5.0, 0.0, 0.0]]))
        {
            teacher.Update(idx, output);
        }

        using var rows = teacher.Read(0, all);
        var read = TestTensors.ToArrays(rows);
        read[4][0].Should().BeApproximately(Math.Exp(5) / (Math.Exp(5) + 2), 1e-6);
        read.Where((_, i) => i != 4).Should().BeEquivalentTo(Reference.OneHot([0, 1, 2, 1, 2], 3));
    }

    [Theory]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.BFloat16)]
    public void Half_memory_halves_the_bytes_and_returns_float32_targets(ScalarType dtype)
    {
        using var full = new HistoricalTeacher(100, 10, 4);
        using var half = new HistoricalTeacher(100, 10, 4, storage: new HistoryStorage { ValueType = dtype });
        half.MemoryBytes.Should().Be(full.MemoryBytes / 2);
        full.MemoryBytes.Should().Be(4L * 100 * 10 * 4);

        using var idx = tensor(new long[] { 0, 99 });
        using var labels = tensor(new long[] { 9, 3 });
        half.SoftTargets(idx, labels, 0.5).Dispose();
        using (var output = Output([[1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10], [0.0, 0, 0, 9, 0, 0, 0, 0, 0, 0]], [[0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], [[0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], [[0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]))
        {
            half.Update(idx, output);
        }

        using var targets = half.SoftTargets(idx, labels, 0.5);
        targets.dtype.Should().Be(ScalarType.Float32);
        using var sums = targets.sum(2);
        sums.data<float>().ToArray().Should().OnlyContain(v => Math.Abs(v - 1) < 1e-2);
    }

    [Fact]
    public void Indices_outside_the_dataset_are_rejected()
    {
        using var teacher = new HistoricalTeacher(10, 3, 2);
        using var labels = tensor(new long[] { 0, 1 });
        using var high = tensor(new long[] { 3, 10 });
        using var negative = tensor(new long[] { -1, 2 });
        using var floats = tensor(new float[] { 1, 2 });

        ((Action)(() => teacher.SoftTargets(high, labels, 0.5))).Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "indices" && e.Message.Contains("0..9") && e.Message.Contains("10"));
        ((Action)(() => teacher.SoftTargets(negative, labels, 0.5))).Should().Throw<ArgumentException>().Where(e => e.ParamName == "indices");
        ((Action)(() => teacher.SoftTargets(floats, labels, 0.5))).Should().Throw<ArgumentException>().Where(e => e.ParamName == "indices");
        using var badLabels = tensor(new long[] { 0, 3 });
        using var ok = tensor(new long[] { 0, 1 });
        ((Action)(() => teacher.SoftTargets(ok, badLabels, 0.5))).Should().Throw<ArgumentException>().Where(e => e.ParamName == "labels");
        ((Action)(() => teacher.SoftTargets(ok, labels, 1.5))).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "alpha");
        teacher.SeenCount().Should().Be(0, "a rejected call changes nothing");
    }

    [Fact]
    public void Save_and_load_round_trip_and_reject_a_mismatched_or_truncated_state()
    {
        using var teacher = new HistoricalTeacher(8, 3, 2);
        using var idx = tensor(new long[] { 2, 6 });
        using var labels = tensor(new long[] { 1, 2 });
        teacher.SoftTargets(idx, labels, 0.5).Dispose();
        using (var output = Output([[1.0, 2, 3], [3.0, 2, 1]], [[0.5, 0, 0], [0, 0.5, 0]]))
        {
            teacher.Update(idx, output);
        }

        using var buffer = new MemoryStream();
        teacher.Save(buffer);
        var bytes = buffer.ToArray();

        using var restored = new HistoricalTeacher(8, 3, 2);
        restored.Load(new MemoryStream(bytes));
        restored.SeenCount().Should().Be(2);
        using var all = arange(8, ScalarType.Int64);
        using var a = teacher.Read(1, all);
        using var b = restored.Read(1, all);
        TestTensors.ToArrays(b).Should().BeEquivalentTo(TestTensors.ToArrays(a));

        using var other = new HistoricalTeacher(9, 3, 2);
        ((Action)(() => other.Load(new MemoryStream(bytes)))).Should().Throw<InvalidDataException>().WithMessage("*8 samples*9*");

        using var fresh = new HistoricalTeacher(8, 3, 2);
        ((Action)(() => fresh.Load(new MemoryStream(bytes[..^10])))).Should().Throw<InvalidDataException>().WithMessage("*truncated*");
        fresh.SeenCount().Should().Be(0, "a failed load leaves the memory as it was");
    }

    [Fact]
    public void Reads_and_updates_do_not_leak_tensors()
    {
        using var teacher = new HistoricalTeacher(64, 5, 3);
        using var labels = randint(0, 5, [16], dtype: ScalarType.Int64);
        void Step(int i)
        {
            using var scope = NewDisposeScope();
            var idx = arange(i % 4 * 16, (i % 4 * 16) + 16, dtype: ScalarType.Int64);
            teacher.SoftTargets(idx, labels, 0.5);
            using var output = new MultiBranchOutput(randn(16, 5), [randn(16, 5), randn(16, 5)]);
            teacher.Update(idx, output);
        }

        Step(0);
        var before = TestTensors.LiveTensors;
        for (var i = 1; i < 30; i++)
        {
            Step(i);
        }

        TestTensors.LiveTensors.Should().Be(before);
    }

    [Fact]
    public void Dispose_frees_the_memory()
    {
        var before = TestTensors.LiveTensors;
        var teacher = new HistoricalTeacher(10, 3, 2);
        TestTensors.LiveTensors.Should().BeGreaterThan(before);
        teacher.Dispose();
        TestTensors.LiveTensors.Should().Be(before);
        using var idx = tensor(new long[] { 0 });
        ((Action)(() => teacher.SoftTargets(idx, idx, 0.5))).Should().Throw<ObjectDisposedException>();
    }

    internal static void AssertClose(double[][] actual, double[][] expected, double tolerance)
    {
        actual.Length.Should().Be(expected.Length);
        for (var i = 0; i < actual.Length; i++)
        {
            for (var j = 0; j < actual[i].Length; j++)
            {
                actual[i][j].Should().BeApproximately(expected[i][j], tolerance, $"element [{i}, {j}]");
            }
        }
    }
}
