using DTSKD.Benchmarks.Study;
using DTSKD.Core.Data;
using static TorchSharp.torch;

namespace DTSKD.Benchmarks.Tests;

public sealed class NoisyLabelsTests
{
    private static long[] Labels(IImageSource source)
    {
        using var reader = source.OpenReader(CPU);
        using var order = arange(source.Count, ScalarType.Int64);
        var labels = new long[source.Count];
        foreach (var batch in reader.Read(order, 64))
        {
            using var _ = batch;
            var idx = batch.Indices.data<long>().ToArray();
            var y = batch.Labels.data<long>().ToArray();
            for (var i = 0; i < idx.Length; i++)
            {
                labels[idx[i]] = y[i];
            }
        }

        return labels;
    }

    private static ImageDataset Source(int n, int classes)
    {
        using var images = zeros([n, 1, 4, 4], ScalarType.Byte);
        using var labels = arange(n, ScalarType.Int64).remainder(classes);
        return ImageDataset.FromTensors(images, labels, classes, "toy");
    }

    [Fact]
    public void A_seeded_fraction_of_labels_moves_to_another_class_and_nothing_else_changes()
    {
        using var clean = Source(1000, 10);
        var truth = Labels(clean);
        using var noisy = new NoisyLabels(Source(1000, 10), 0.2, seed: 7);
        var seen = Labels(noisy);
        seen.Zip(truth).Count(p => p.First != p.Second).Should().Be(200, "round(0.2 x 1000) labels are replaced, each by another class");
        seen.Should().OnlyContain(y => y >= 0 && y < 10);
        Labels(noisy).Should().Equal(seen, "every reader sees the same noisy labels");

        using var again = new NoisyLabels(Source(1000, 10), 0.2, seed: 7);
        Labels(again).Should().Equal(seen, "the same seed gives the same noise");
        using var other = new NoisyLabels(Source(1000, 10), 0.2, seed: 8);
        Labels(other).Should().NotEqual(seen);

        // Every other class is a possible replacement.
        seen.Zip(truth).Where(p => p.First != p.Second).Select(p => (p.First - p.Second + 10) % 10).Distinct().Should().HaveCount(9);
    }

    [Fact]
    public void A_fraction_outside_0_to_1_is_refused()
    {
        var act = () => new NoisyLabels(Source(10, 2), 1.0, 1);
        act.Should().Throw<ArgumentOutOfRangeException>().Which.Message.Should().Contain("--label-noise");
    }
}
