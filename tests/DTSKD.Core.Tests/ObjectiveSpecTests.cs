using DTSKD.Core.Models;

namespace DTSKD.Core.Tests;

public sealed class ObjectiveSpecTests
{
    [Fact]
    public void Every_key_builds_its_objective_and_the_overrides_change_the_options()
    {
        using var model = ResNetDtskd.ResNet18(TrainerTests.TinyModel);
        foreach (var key in ObjectiveSpec.Keys)
        {
            var objective = ObjectiveSpec.Parse(key).Create(model, 10);
            (objective as IDisposable)?.Dispose();
            objective.Should().BeAssignableTo(key is "ce" or "ce-all" or "ls" ? typeof(CrossEntropyObjective) : typeof(DualTeacherLoss), key);
        }

        ((CrossEntropyObjective)ObjectiveSpec.Parse("ce").Create(model, 10)).HeadWeights.Should().Equal(1.0, 0.0, 0.0, 0.0);
        ((CrossEntropyObjective)ObjectiveSpec.Parse("ce-all").Create(model, 10)).HeadWeights.Should().Equal(1.0, 1.0, 1.0, 1.0);

        var pskd = ObjectiveSpec.Parse("pskd").LossOptions(model.BranchCount)!;
        pskd.BranchWeights.Should().Equal(0.0, 0.0, 0.0);
        pskd.StructuralWeight.Should().Be(0);
        pskd.UseHistoricalTeacher.Should().BeTrue();
        ObjectiveSpec.Parse("historical").LossOptions(3)!.StructuralWeight.Should().Be(0);
        ObjectiveSpec.Parse("structural").LossOptions(3)!.UseHistoricalTeacher.Should().BeFalse();

        var tuned = ObjectiveSpec.Parse(" dtskd[t2=off; warmup=20;t=2;ce=3.2;kd=0.5;detach;history=top5;history-host] ");
        tuned.Text.Should().Be("dtskd[t2=off;warmup=20;t=2;ce=3.2;kd=0.5;detach;history=top5;history-host]");
        tuned.FileName.Should().Be("dtskd_t2-off_warmup-20_t-2_ce-3.2_kd-0.5_detach_history-top5_history-host");
        tuned.IsRecipe.Should().BeFalse();
        ObjectiveSpec.Parse("dtskd").IsRecipe.Should().BeTrue();
        var options = tuned.LossOptions(3)!;
        options.ScaleKdByTemperatureSquared.Should().BeFalse();
        options.StructuralWarmupEpochs.Should().Be(20);
        options.Temperature.Should().Be(2);
        options.HistoricalWeight.Should().Be(3.2);
        options.StructuralWeight.Should().Be(0.5);
        options.DetachBackbone.Should().BeTrue();
        options.History.Should().Be(HistoryStorage.Dense with { TopK = 5, ValueType = ScalarType.Float16, OnHost = true });
        tuned.Description.Should().Contain("KD without the T² factor").And.Contain("w_ce = 3.2");
    }

    [Fact]
    public void A_template_is_the_starting_point_and_is_not_changed()
    {
        var template = new DualTeacherLossOptions { BackboneWeight = 2.0, Temperature = 3.0 };
        var options = ObjectiveSpec.Parse("dtskd[t=5]").LossOptions(3, template)!;
        options.BackboneWeight.Should().Be(2.0, "the template's value stays where the spec says nothing");
        options.Temperature.Should().Be(5.0);
        template.Temperature.Should().Be(3.0);
        ObjectiveSpec.Parse("ce").LossOptions(3, template).Should().BeNull();
    }

    [Fact]
    public void A_list_keeps_the_commas_inside_brackets_with_their_row()
    {
        ObjectiveSpec.ParseList("ce, dtskd[t2=off;warmup=10],pskd").Select(s => s.Text).Should().Equal("ce", "dtskd[t2=off;warmup=10]", "pskd");
    }

    [Theory]
    [InlineData("dtsk", "unknown objective 'dtsk'; known objectives: ce, ce-all")]
    [InlineData("ce[t2=off]", "objective 'ce' takes no overrides")]
    [InlineData("dtskd[t2=maybe]", "unknown override 't2=maybe'")]
    [InlineData("dtskd[t=]", "override 't=' needs a number")]
    [InlineData("dtskd[warmup=-1]", "override 'warmup=-1' needs a whole number")]
    [InlineData("dtskd[t2=off", "opens a bracket it does not close")]
    public void A_bad_spec_says_what_is_known(string text, string expected)
    {
        var act = () => ObjectiveSpec.Parse(text);
        act.Should().Throw<ArgumentException>().Which.Message.Should().Contain(expected);
    }

    [Fact]
    public void Label_smoothing_is_pytorch_s_cross_entropy_with_label_smoothing()
    {
        // torch.nn.functional.cross_entropy(z, y, label_smoothing=eps) on these float64 logits (PyTorch 1.13).
        using var z = tensor(Enumerable.Range(0, 4).SelectMany(i => Enumerable.Range(0, 5).Select(j => Math.Sin((0.7 * i) + (1.3 * j)) * (1 + (0.5 * j)))).ToArray(), [4, 5], ScalarType.Float64);
        using var y = tensor(new long[] { 0, 3, 4, 1 });
        using var indices = arange(4);
        foreach (var (eps, expected) in new[] { (0.1, 2.6749227227410226), (0.2, 2.6491345061922473) })
        {
            var objective = new CrossEntropyObjective([1.0, 0.0], 5) { LabelSmoothing = eps };
            using var output = new MultiBranchOutput(z.alias(), [z.alias()]);
            using var result = objective.Compute(output, y, indices, 0, 1);
            result.Total.item<double>().Should().BeApproximately(expected, 1e-12, $"ε {eps}");
            result.Components.Keys.Should().Equal("ls/backbone");
            objective.Name.Should().Be($"ce-backbone-ls{eps}");
        }

        using (var plain = new MultiBranchOutput(z.alias(), [z.alias()]))
        using (var result = new CrossEntropyObjective([1.0, 0.0], 5).Compute(plain, y, indices, 0, 1))
        {
            result.Total.item<double>().Should().BeApproximately(2.700710939289798, 1e-12, "ε 0 is cross-entropy");
        }

        using var model = ResNetDtskd.ResNet18(TrainerTests.TinyModel);
        ((CrossEntropyObjective)ObjectiveSpec.Parse("ls").Create(model, 10)).LabelSmoothing.Should().Be(0.1);
        var tuned = ObjectiveSpec.Parse("ls[eps=0.2]");
        (tuned.Text, tuned.FileName).Should().Be(("ls[eps=0.2]", "ls_eps-0.2"));
        ((CrossEntropyObjective)tuned.Create(model, 10)).LabelSmoothing.Should().Be(0.2);
        ((CrossEntropyObjective)tuned.Create(model, 10)).HeadWeights.Should().Equal(1.0, 0.0, 0.0, 0.0);
        ((Action)(() => ObjectiveSpec.Parse("ls[eps=1.5]"))).Should().Throw<ArgumentException>().WithMessage("objective 'ls' takes eps=<ε> with ε in (0, 1), as in ls[eps=0.2]; got 'eps=1.5'.*");
        ((Action)(() => ObjectiveSpec.Parse("ls[t2=off]"))).Should().Throw<ArgumentException>();
        ((Action)(() => _ = new CrossEntropyObjective([1.0, 0.0], 5) { LabelSmoothing = 1 })).Should().Throw<ArgumentOutOfRangeException>();
    }
}
