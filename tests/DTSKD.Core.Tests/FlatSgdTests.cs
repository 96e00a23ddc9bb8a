using DTSKD.Core.Models;
using DTSKD.Core.Training;

namespace DTSKD.Core.Tests;

public class FlatSgdTests
{
    private static ResNetDtskd Model()
    {
        manual_seed(11);
        return ResNetDtskd.ResNet18(new MultiBranchModelOptions { ClassCount = 5, BaseWidth = 16, NeckWidth = 16 });
    }

    private static void Train(ResNetDtskd model, Action zeroGrad, Action step, int steps)
    {
        manual_seed(12);
        using var images = randn(steps * 8, 3, 16, 16);
        using var labels = randint(0, 5, [steps * 8], dtype: ScalarType.Int64);
        var objective = CrossEntropyObjective.AllHeads(model);
        model.train();
        for (var s = 0; s < steps; s++)
        {
            using var scope = NewDisposeScope();
            using var output = model.call(images.narrow(0, s * 8, 8));
            using var result = objective.Compute(output, labels.narrow(0, s * 8, 8), arange(8, dtype: ScalarType.Int64), 0, 1);
            zeroGrad();
            result.Total.backward();
            step();
        }
    }

    [Theory]
    [InlineData(0.9, true, 5e-4)]
    [InlineData(0.9, false, 5e-4)]
    [InlineData(0.0, false, 0.0)]
    public void Matches_TorchSharps_SGD_over_many_steps(double momentum, bool nesterov, double weightDecay)
    {
        using var reference = Model();
        using var flat = Model();
        using var sgd = optim.SGD(reference.parameters(), 0.05, momentum, 0, weightDecay, nesterov);
        using var ours = new FlatSgd(flat.parameters(), 0.05, momentum, weightDecay, nesterov);

        Train(reference, () => sgd.zero_grad(), () => sgd.step(), 40);
        Train(flat, ours.zero_grad, () => ours.step(), 40);

        var a = reference.parameters().ToList();
        var b = flat.parameters().ToList();
        var worst = a.Zip(b).Max(p => { using var d = (p.First - p.Second).abs().max(); return d.item<float>(); });
        worst.Should().BeLessThan(1e-6f);
    }

    [Fact]
    public void Parameters_and_gradients_are_views_into_the_flat_buffers()
    {
        using var model = Model();
        var before = model.parameters().Select(p => p.detach().clone()).ToList();
        using var ours = new FlatSgd(model.parameters(), 0.1);
        model.parameters().Zip(before).Should().OnlyContain(p => p.First.allclose(p.Second, 0, 0, false), "gathering keeps the values");
        ours.Count.Should().Be(model.parameters().Sum(p => p.numel()));

        using (var scope = NewDisposeScope())
        {
            using var output = model.call(randn(2, 3, 16, 16));
            output.Backbone.sum().backward();
        }

        using var gradNorm = ours.FlatGrad.abs().sum();
        gradNorm.item<float>().Should().BeGreaterThan(0, "backward accumulates into the flat gradient buffer");
        using var change = ones_like(ours.Flat);
        using (no_grad())
        {
            ours.Flat.add_(change);
        }

        var parameters = model.parameters().ToList();
        for (var i = 0; i < parameters.Count; i++)
        {
            using var expected = before[i] + 1;
            parameters[i].allclose(expected, 0, 1e-6, false).Should().BeTrue("every parameter sees writes to the flat buffer");
        }

        before.ForEach(t => t.Dispose());
    }

    [Fact]
    public void A_skipped_step_changes_nothing_and_state_round_trips()
    {
        using var model = Model();
        using var ours = new FlatSgd(model.parameters(), 0.05, 0.9, 5e-4, nesterov: true);
        Train(model, ours.zero_grad, () => ours.step(), 3);
        using var snapshot = ours.Flat.clone();
        using var skip = tensor(true);
        ours.Step(skip);
        ours.Flat.allclose(snapshot, 0, 0, false).Should().BeTrue();

        using var buffer = new MemoryStream();
        using (var writer = new BinaryWriter(buffer, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            ours.Save(writer);
        }

        using var twin = Model();
        using var restored = new FlatSgd(twin.parameters(), 0.01, 0.9, 5e-4, nesterov: true);
        using (no_grad())
        {
            restored.Flat.copy_(ours.Flat);
        }

        buffer.Position = 0;
        using (var reader = new BinaryReader(buffer))
        {
            restored.Load(reader);
        }

        restored.LearningRate.Should().Be(0.05);
        Train(model, ours.zero_grad, () => ours.step(), 2);
        Train(twin, restored.zero_grad, () => restored.step(), 2);
        ours.Flat.allclose(restored.Flat, 0, 0, false).Should().BeTrue("same state, same data, same steps");
    }
}
