namespace DTSKD.Core.Tests;

public class CoefficientScheduleTests
{
    [Theory]
    [InlineData(0, 0.9)]
    [InlineData(1, 0.899975326)]       // 0.45 * (1 + cos(pi / 300))
    [InlineData(75, 0.768198052)]      // E/4: 0.45 * (1 + cos(pi / 4))
    [InlineData(150, 0.45)]            // E/2
    [InlineData(225, 0.131801948)]     // 3E/4
    [InlineData(299, 0.000024673786)]  // E-1
    public void Cosine_recipe_values(int epoch, double expected)
    {
        var schedule = CoefficientSchedule.Cosine(0.9, 0.0);
        schedule.At(epoch, 300).Should().BeApproximately(expected, 1e-9);
        schedule.At(epoch, 300).Should().BeApproximately(Reference.CosineAlpha(0.9, 0.0, epoch, 300), 1e-15);
    }

    [Fact]
    public void Cosine_with_a_floor_stays_between_min_and_max()
    {
        var schedule = CoefficientSchedule.Cosine(0.8, 0.2);
        schedule.At(0, 10).Should().Be(0.8);
        schedule.At(5, 10).Should().BeApproximately(0.5, 1e-12);
        Enumerable.Range(0, 10).Select(e => schedule.At(e, 10)).Should().BeInDescendingOrder().And.OnlyContain(v => v > 0.2 && v <= 0.8);
    }

    [Theory]
    [InlineData(0, 1 - (0.8 / 300))]
    [InlineData(1, 1 - (0.8 * 2 / 300))]
    [InlineData(75, 1 - (0.8 * 76 / 300))]
    [InlineData(150, 1 - (0.8 * 151 / 300))]
    [InlineData(225, 1 - (0.8 * 226 / 300))]
    [InlineData(299, 0.2)]
    public void Linear_reference_values(int epoch, double expected)
    {
        CoefficientSchedule.Linear(0.8).At(epoch, 300).Should().BeApproximately(expected, 1e-12);
    }

    [Fact]
    public void Constant_is_constant()
    {
        var schedule = CoefficientSchedule.Constant(0.3);
        Enumerable.Range(0, 7).Select(e => schedule.At(e, 7)).Should().AllBeEquivalentTo(0.3);
    }

    [Fact]
    public void Out_of_range_arguments_are_rejected_with_their_names()
    {
        var schedule = CoefficientSchedule.Cosine();
        ((Action)(() => schedule.At(300, 300))).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "epoch");
        ((Action)(() => schedule.At(-1, 300))).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "epoch");
        ((Action)(() => schedule.At(0, 0))).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "totalEpochs");
        ((Action)(() => CoefficientSchedule.Cosine(1.5, 0))).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "max");
        ((Action)(() => CoefficientSchedule.Cosine(0.2, 0.5))).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "min");
        ((Action)(() => CoefficientSchedule.Linear(double.NaN))).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "alphaT");
    }
}
