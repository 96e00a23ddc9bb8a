using DTSKD.Core.Training;
using TorchSharp.Modules;

namespace DTSKD.Core.Tests.Parallel;

/// <summary>
/// Synchronised batch norms on two thread ranks against one plain batch norm over both ranks' batches together, in
/// float64: outputs, input and parameter gradients, running statistics.
/// </summary>
public sealed class SyncBatchNormTests
{
    // Unequal shares (5 and 3 images): the ranks' sums must be weighted by their counts, not averaged.
    private static readonly int[] Shares = [5, 3];

    [Fact]
    public void Two_ranks_normalise_forward_and_backward_as_one_batch_norm_over_both_batches()
    {
        using var inputs = Inputs();
        using var labels = tensor(new long[] { 0, 1, 2, 3, 0, 1, 2, 3 });
        var expected = Plain(inputs, labels);

        var ranks = ThreadGroup.Create(2);
        var models = ranks.Select(_ => Network()).ToArray();
        var ranked = ThreadGroup.Run(ranks, group =>
        {
            var model = models[group.Rank];
            using var hooks = SyncBatchNorm.Attach(model.modules(), group);
            return Step(model, inputs, labels, group);
        });

        var together = ranked[0].Output.Concat(ranked[1].Output).ToArray();
        MaxGap(together, expected.Output).Should().BeLessThan(1e-12, "each rank's outputs are the whole batch's normalisation of its own images");
        var inputGradients = ranked[0].InputGradient.Concat(ranked[1].InputGradient).ToArray();
        MaxGap(inputGradients, expected.InputGradient).Should().BeLessThan(1e-12, "each rank's input gradient is the whole batch loss's");
        foreach (var rank in ranked)
        {
            MaxGap(rank.ParameterGradients, expected.ParameterGradients).Should().BeLessThan(1e-12, "the ranks' summed parameter gradients are the whole batch's");
            MaxGap(rank.Statistics, expected.Statistics).Should().BeLessThan(1e-12, "the running statistics are updated with the whole batch's mean and unbiased variance");
            rank.Tracked.Should().Equal(expected.Tracked);
        }

        // Per rank (no hooks) the figures are other ones: the comparison above can fail.
        var plain = new[] { Network(), Network() };
        var alone = ThreadGroup.Run(ThreadGroup.Create(2), group => Step(plain[group.Rank], inputs, labels, group));
        MaxGap(alone[0].InputGradient.Concat(alone[1].InputGradient).ToArray(), expected.InputGradient).Should().BeGreaterThan(1e-4);
        foreach (var model in models.Concat(plain))
        {
            model.Dispose();
        }
    }

    [Fact]
    public void Bfloat16_inputs_with_float32_statistics_as_mixed_precision_trains_them_match_the_plain_batch_norm()
    {
        // As the trainer's bf16 mode: the batch norm keeps float32 weights and statistics, its input is bfloat16.
        manual_seed(8);
        using var inputs = randn([8, 16, 4, 4]).mul(3).add(1).to(ScalarType.BFloat16);
        using var upstream = randn([8, 16, 4, 4]).to(ScalarType.BFloat16);
        BatchNorm2d Norm()
        {
            var norm = nn.BatchNorm2d(16);
            using var noGrad = no_grad();
            norm.weight.uniform_(0.5, 1.5);
            norm.bias!.uniform_(-0.5, 0.5);
            return norm;
        }

        manual_seed(9);
        using var plain = Norm();
        var x = inputs.detach().clone().requires_grad_();
        using var expected = plain.call(x);
        expected.backward([upstream]);
        var (expectedOutput, expectedGradient) = (Values(expected), Values(x.grad!));

        var ranks = ThreadGroup.Create(2);
        var norms = ranks.Select(_ => { manual_seed(9); return Norm(); }).ToArray();
        var ranked = ThreadGroup.Run(ranks, group =>
        {
            using var scope = NewDisposeScope();
            using var hooks = SyncBatchNorm.Attach([norms[group.Rank]], group);
            var share = inputs.narrow(0, 4 * group.Rank, 4).detach().clone().requires_grad_();
            var output = norms[group.Rank].call(share);
            output.dtype.Should().Be(ScalarType.BFloat16);
            output.backward([upstream.narrow(0, 4 * group.Rank, 4)]);
            return (Output: Values(output), Gradient: Values(share.grad!));
        });

        // bfloat16 keeps 8 bits: the outputs agree to its rounding, not to float32's.
        MaxGap([.. ranked[0].Output, .. ranked[1].Output], expectedOutput).Should().BeLessThan(0.05);
        MaxGap([.. ranked[0].Gradient, .. ranked[1].Gradient], expectedGradient).Should().BeLessThan(0.05);
        Array.ForEach(norms, n => n.Dispose());
    }

    [Fact]
    public void One_value_per_channel_on_each_rank_is_normalised_over_the_ranks_values()
    {
        // A pooled neck with one image per rank: a plain batch norm refuses it, the two ranks together have two values.
        manual_seed(12);
        using var inputs = randn([2, 16, 1, 1], ScalarType.Float64);
        using var plain = nn.BatchNorm2d(16).to(ScalarType.Float64);
        using var expected = plain.call(inputs);
        var ranks = ThreadGroup.Create(2);
        var norms = ranks.Select(_ => nn.BatchNorm2d(16).to(ScalarType.Float64)).ToArray();
        var ranked = ThreadGroup.Run(ranks, group =>
        {
            using var scope = NewDisposeScope();
            using var hooks = SyncBatchNorm.Attach([norms[group.Rank]], group);
            return Values(norms[group.Rank].call(inputs.narrow(0, group.Rank, 1)));
        });

        MaxGap([.. ranked[0], .. ranked[1]], Values(expected)).Should().BeLessThan(1e-12);
        Values(norms[0].running_var!).Should().Equal(Values(plain.running_var!));
        Array.ForEach(norms, n => n.Dispose());
    }

    [Fact]
    public void Hooks_leave_evaluation_alone_and_go_when_disposed()
    {
        using var inputs = Inputs();
        var ranks = ThreadGroup.Create(2);

        // Built one after another: the seed sets the one global generator, which two threads would share.
        var networks = ranks.Select(_ => (Network(), Network())).ToArray();
        var outputs = ThreadGroup.Run(ranks, group =>
        {
            var (model, plain) = networks[group.Rank];
            using var scope = NewDisposeScope();
            var mine = Share(inputs, group.Rank);
            var hooks = SyncBatchNorm.Attach(model.modules(), group);
            model.eval();
            plain.eval();
            var evaluated = MaxGap(Values(model.call(mine)), Values(plain.call(mine)));

            // A batch norm frozen in evaluation mode inside a training model keeps using its running statistics.
            model.train();
            plain.train();
            foreach (var norm in model.modules().OfType<BatchNorm>().Concat(plain.modules().OfType<BatchNorm>()))
            {
                norm.eval();
            }

            var frozen = MaxGap(Values(model.call(mine)), Values(plain.call(mine)));
            hooks.Dispose();
            model.train();
            plain.train();
            var removed = MaxGap(Values(model.call(mine)), Values(plain.call(mine)));
            model.Dispose();
            plain.Dispose();
            return (evaluated, frozen, removed);
        });

        foreach (var (evaluated, frozen, removed) in outputs)
        {
            evaluated.Should().Be(0);
            frozen.Should().Be(0);
            removed.Should().Be(0, "without the hooks each rank normalises its own batch again");
        }
    }

    [Fact]
    public void A_training_step_with_synchronised_batch_norms_leaves_no_tensor_behind()
    {
        using var inputs = Inputs();
        using var labels = tensor(new long[] { 0, 1, 2, 3, 0, 1, 2, 3 });
        var ranks = ThreadGroup.Create(2);
        var models = ranks.Select(_ => Network()).ToArray();
        var live = ThreadGroup.Run(ranks, group =>
        {
            var model = models[group.Rank];
            using var hooks = SyncBatchNorm.Attach(model.modules(), group);
            var counts = new List<long>();
            for (var step = 0; step < 4; step++)
            {
                Step(model, inputs, labels, group);
                counts.Add(TestTensors.LiveTensors);
            }

            return counts;
        });

        Array.ForEach(models, m => m.Dispose());
        foreach (var counts in live)
        {
            counts.Skip(1).Should().AllBeEquivalentTo(counts[1], "every step frees what it made");
        }
    }

    private static Tensor Inputs()
    {
        manual_seed(21);
        return randn([8, 3, 6, 6], ScalarType.Float64).mul(2).add(3);
    }

    private static Tensor Share(Tensor inputs, int rank) => inputs.narrow(0, rank == 0 ? 0 : Shares[0], Shares[rank]);

    private static Sequential Network()
    {
        manual_seed(4);

        // The second batch norm averages cumulatively (momentum null), the module's other running-statistics rule.
        var cumulative = nn.BatchNorm2d(16);
        cumulative.momentum = null;
        var model = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding: 1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 1), cumulative, nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4));
        model.to(ScalarType.Float64);
        return model;
    }

    /// <summary>One plain batch norm network on all eight images, summed loss.</summary>
    private static StepFigures Plain(Tensor inputs, Tensor labels)
    {
        using var model = Network();
        using var scope = NewDisposeScope();
        var x = inputs.detach().clone().requires_grad_();
        var output = model.call(x);
        nn.functional.cross_entropy(output, labels, reduction: nn.Reduction.Sum).backward();
        return Figures(model, output, x);
    }

    /// <summary>One rank's step on its share, summed loss; the parameter gradients summed over the ranks.</summary>
    private static StepFigures Step(Sequential model, Tensor inputs, Tensor labels, ThreadGroup group)
    {
        using var scope = NewDisposeScope();
        model.zero_grad();
        model.train();
        var x = Share(inputs, group.Rank).detach().clone().requires_grad_();
        var output = model.call(x);
        nn.functional.cross_entropy(output, Share(labels, group.Rank), reduction: nn.Reduction.Sum).backward();
        foreach (var parameter in model.parameters())
        {
            group.AllReduce(parameter.grad!, ReduceOperation.Sum);
        }

        return Figures(model, output, x);
    }

    private static StepFigures Figures(Sequential model, Tensor output, Tensor x)
    {
        var norms = model.modules().OfType<BatchNorm>().ToArray();
        return new(
            Values(output),
            Values(x.grad!),
            [.. model.parameters().SelectMany(p => Values(p.grad!))],
            [.. norms.SelectMany(n => Values(n.running_mean!).Concat(Values(n.running_var!)))],
            [.. norms.Select(n => n.num_batches_tracked!.item<long>())]);
    }

    private static double[] Values(Tensor t)
    {
        using var flat = t.detach().to(ScalarType.Float64).flatten();
        return flat.data<double>().ToArray();
    }

    private static double MaxGap(double[] a, double[] b)
    {
        a.Should().HaveSameCount(b);
        return a.Zip(b).Max(p => Math.Abs(p.First - p.Second));
    }

    private sealed record StepFigures(double[] Output, double[] InputGradient, double[] ParameterGradients, double[] Statistics, long[] Tracked);
}
