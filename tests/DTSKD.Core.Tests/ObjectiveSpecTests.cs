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
            objective.Should().BeAssignableTo(key.StartsWith("ce", StringComparison.Ordinal) ? typeof(CrossEntropyObjective) : typeof(DualTeacherLoss), key);
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
}
