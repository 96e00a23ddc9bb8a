using DTSKD.Core.Data;
using DTSKD.Core.Training;
using TorchSharp.Modules;

namespace DTSKD.Core.Tests.Parallel;

/// <summary>The two places the trainer calls its process group: the epoch order (shards) and the step (gradient buckets).</summary>
public sealed class ProcessGroupSeamTests
{
    private static long[] Values(Tensor t) => t.data<long>().ToArray();

    [Fact]
    public void One_process_trains_the_seeded_permutation_as_before()
    {
        var options = new TrainerOptions { BatchSize = 4, Seed = 5 };
        var order = new EpochOrder(10, options, SingleProcessGroup.Instance);
        using var ours = order.For(3);
        using var sampler = new BatchSampler(10, 4, 5).Order(3);

        Values(ours).Should().Equal(Values(sampler));
        order.StepsPerEpoch.Should().Be(3);
    }

    [Fact]
    public void Each_sample_belongs_to_one_rank_for_the_whole_run_and_every_rank_takes_the_same_steps()
    {
        var options = new TrainerOptions { BatchSize = 2, Seed = 11 };
        var ranks = ThreadGroup.Create(3);
        var orders = ranks.Select(g => new EpochOrder(10, options, g)).ToArray();

        var epoch0 = orders.Select(o => { using var t = o.For(0); return Values(t); }).ToArray();
        var epoch1 = orders.Select(o => { using var t = o.For(1); return Values(t); }).ToArray();

        orders.Select(o => o.StepsPerEpoch).Should().AllBeEquivalentTo(2, "ceil(10 / 3) = 4 samples per rank, 2 batches of 2");
        epoch0.Should().AllSatisfy(o => o.Should().HaveCount(4));
        epoch0.SelectMany(o => o).Distinct().Should().BeEquivalentTo(Enumerable.Range(0, 10), "the shards cover the training set");
        for (var r = 0; r < 3; r++)
        {
            epoch1[r].Distinct().Should().BeEquivalentTo(epoch0[r].Distinct(), $"rank {r} keeps its samples from epoch to epoch");
            for (var other = r + 1; other < 3; other++)
            {
                epoch0[r].Intersect(epoch0[other]).Should().BeEmpty("no sample is trained by two ranks");
            }
        }

        epoch0.Zip(epoch1).Any(p => !p.First.SequenceEqual(p.Second)).Should().BeTrue("each rank reshuffles its shard every epoch");
        epoch0.Count(o => o.Distinct().Count() == 3).Should().Be(2, "10 = 4 + 3 + 3: two shards repeat one sample to take 4 like the first");
    }

    [Fact]
    public void A_custom_order_or_more_ranks_than_samples_is_refused_with_several_ranks()
    {
        var ranks = ThreadGroup.Create(2);
        ((Action)(() => _ = new EpochOrder(10, new TrainerOptions { EpochOrder = _ => arange(10L) }, ranks[0])))
            .Should().Throw<ArgumentException>().WithMessage("*EpochOrder orders one process's samples; with 2 ranks*");
        ((Action)(() => _ = new EpochOrder(1, new TrainerOptions(), ranks[0])))
            .Should().Throw<ArgumentException>().WithMessage("2 ranks cannot share 1 training samples*");
    }

    [Fact]
    public void Gradients_are_averaged_over_the_ranks_in_one_call_per_bucket()
    {
        var ranks = ThreadGroup.Create(2);
        var results = ThreadGroup.Run(ranks, group =>
        {
            using var a = new Parameter(zeros(3, dtype: ScalarType.Float64));
            using var b = new Parameter(zeros(2, 2, dtype: ScalarType.Float64));
            using var unused = new Parameter(zeros(2, dtype: ScalarType.Float64));
            using var frozen = new Parameter(zeros(2, dtype: ScalarType.Float64), requires_grad: false);
            using (var loss = a.mul(tensor(new[] { 1.0, 2, 3 })).sum().mul(group.Rank + 1).add(b.sum().mul(10 * group.Rank)))
            {
                loss.backward();
            }

            // 24 bytes for a, then 32 for b: a bucket of 40 bytes is full after b; the unused parameter starts the next one.
            using var buckets = new GradientBuckets([a, b, unused, frozen], group, bucketBytes: 40);
            buckets.Average();
            return (buckets.Count, A: a.grad!.data<double>().ToArray(), B: b.grad!.data<double>().ToArray(), Unused: unused.grad!.data<double>().ToArray(), Frozen: frozen.grad is null);
        });

        foreach (var r in results)
        {
            r.Count.Should().Be(2);
            r.A.Should().Equal(1.5, 3, 4.5);
            r.B.Should().Equal(5, 5, 5, 5);
            r.Unused.Should().Equal(0, 0);
            r.Frozen.Should().BeTrue("a frozen parameter is not averaged");
        }

        ranks[0].Traffic.Should().Be((2, 9L), "two buckets: a and b (3 + 4 values), then the unused parameter (2)");
    }

    [Fact]
    public void One_process_averages_nothing()
    {
        using var a = new Parameter(ones(3));
        using (var loss = a.sum())
        {
            loss.backward();
        }

        var group = ThreadGroup.Create(1)[0];
        using var buckets = new GradientBuckets([a], group);
        buckets.Average();

        group.Traffic.Calls.Should().Be(0);
        a.grad!.data<float>().ToArray().Should().Equal(1, 1, 1);
        SingleProcessGroup.Instance.AllGather(2.5).Should().Equal(2.5);
        ((Action)(() => SingleProcessGroup.Instance.Broadcast(a, 1))).Should().Throw<ArgumentOutOfRangeException>();
    }
}
