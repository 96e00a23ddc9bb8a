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
        var losses = teacher.BranchLosses(output);

        teacher.Temperature.Should().Be(4.0);
        losses.Should().HaveCount(3);
        for (var k = 0; k < 3; k++)
        {
            losses[k].item<float>().Should().BeApproximately((float)Reference.Kl(branches[k], zb, 4.0), 1e-5f);
            losses[k].Dispose();
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_backbone_gets_KD_gradient_unless_detached(bool detach)
    {
        using var backbone = randn(4, 5, requires_grad: true);
        using var branch = randn(4, 5, requires_grad: true);
        var teacher = new StructuralTeacher(4.0, detachBackbone: detach);

        using var loss = teacher.Loss(branch, backbone);
        loss.backward();

        branch.grad!.abs().sum().item<float>().Should().BeGreaterThan(0);
        if (detach)
        {
            backbone.grad.Should().BeNull();
        }
        else
        {
            backbone.grad!.abs().sum().item<float>().Should().BeGreaterThan(0);
        }
    }
}
