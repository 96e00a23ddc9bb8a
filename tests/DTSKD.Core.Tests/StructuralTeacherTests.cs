namespace DTSKD.Core.Tests;

public class StructuralTeacherTests
{
    [Fact]
    public void Each_branch_is_supervised_by_the_backbone_at_T4()
    {
        var rng = new Random(31);
        var zb = TestTensors.RandomLogits(rng, 4, 6);
        var branches = Enumerable.Range(0, 3).Select(_ => TestTensors.RandomLogits(rng, 4, 6)).ToArray();
        using var output = new MultiBranchOutput(TestTensors.ToTensor(zb), branches.Select(b => TestTensors.ToTensor(b)).ToArray());

        var teacher = new StructuralTeacher();
        using var terms = teacher.Terms(output);

        teacher.Temperature.Should().Be(4.0);
        terms.shape.Should().Equal(3);
        var values = terms.data<float>().ToArray();
        for (var k = 0; k < 3; k++)
        {
            values[k].Should().BeApproximately((float)Reference.Kl(branches[k], zb, 4.0), 1e-5f);
        }
    }

    [Fact]
    public void Without_the_T_squared_scale_each_term_is_the_plain_KL()
    {
        var rng = new Random(37);
        var zb = TestTensors.RandomLogits(rng, 3, 5);
        var zk = TestTensors.RandomLogits(rng, 3, 5);
        using var output = new MultiBranchOutput(TestTensors.ToTensor(zb, ScalarType.Float64), [TestTensors.ToTensor(zk, ScalarType.Float64)]);

        using var terms = new StructuralTeacher(2.0, scaleByTemperatureSquared: false).Terms(output);

        terms.item<double>().Should().BeApproximately(Reference.Kl(zk, zb, 2.0) / 4.0, 1e-12);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_backbone_gets_KD_gradient_unless_detached(bool detach)
    {
        using var backbone = randn(4, 5, requires_grad: true);
        using var branch = randn(4, 5, requires_grad: true);
        var teacher = new StructuralTeacher(4.0, detachBackbone: detach);

        using (var output = new MultiBranchOutput(backbone.alias(), [branch.alias()]))
        using (var terms = teacher.Terms(output))
        {
            terms.sum().backward();
        }

        branch.grad!.abs().sum().item<float>().Should().BeGreaterThan(0);
        if (detach)
        {
            // The heads are stacked for one pass, so the backbone gets a gradient tensor, but it is zero.
            (backbone.grad is null || backbone.grad.abs().sum().item<float>() == 0).Should().BeTrue();
        }
        else
        {
            backbone.grad!.abs().sum().item<float>().Should().BeGreaterThan(0);
        }
    }
}
