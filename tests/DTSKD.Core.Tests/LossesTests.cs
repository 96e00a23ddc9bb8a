namespace DTSKD.Core.Tests;

public class LossesTests
{
    [Theory]
    [InlineData(1.0, 11)]
    [InlineData(4.0, 12)]
    [InlineData(2.5, 13)]
    public void KlDivergence_matches_the_reference_formula_in_double(double temperature, int seed)
    {
        var rng = new Random(seed);
        var s = TestTensors.RandomLogits(rng, 5, 7);
        var t = TestTensors.RandomLogits(rng, 5, 7);
        using var student = TestTensors.ToTensor(s);
        using var teacher = TestTensors.ToTensor(t);

        using var kl = Losses.KlDivergence(student, teacher, temperature);

        kl.dim().Should().Be(0);
        kl.dtype.Should().Be(ScalarType.Float32);
        kl.item<float>().Should().BeApproximately((float)Reference.Kl(s, t, temperature), (float)(1e-5 * Reference.Kl(s, t, temperature)));
    }

    [Fact]
    public void KlDivergence_of_a_hand_computed_case()
    {
        // One row, two classes, T = 1: student logits (0, 0) -> p = (1/2, 1/2); teacher logits (0, ln 3) -> (1/4, 3/4).
        using var student = tensor(new float[] { 0, 0 }, [1, 2]);
        using var teacher = tensor(new float[] { 0, (float)Math.Log(3) }, [1, 2]);
        double q0 = 0.25 + 1e-7, q1 = 0.75 + 1e-7;
        var expected = (q0 * (Math.Log(q0) - Math.Log(0.5))) + (q1 * (Math.Log(q1) - Math.Log(0.5)));

        using var kl = Losses.KlDivergence(student, teacher, 1.0);

        kl.item<float>().Should().BeApproximately((float)expected, 1e-6f);
    }

    [Fact]
    public void SoftTargetKlDivergence_matches_the_reference_formula_and_includes_the_epsilon()
    {
        var rng = new Random(3);
        var s = TestTensors.RandomLogits(rng, 4, 10);
        var q = TestTensors.RandomDistribution(rng, 4, 10);
        using var student = TestTensors.ToTensor(s, ScalarType.Float64);
        using var target = TestTensors.ToTensor(q, ScalarType.Float64);

        using var skl = Losses.SoftTargetKlDivergence(student, target);

        var expected = Reference.SoftTargetKl(s, q, 1.0);
        skl.item<double>().Should().BeApproximately(expected, 1e-12);

        // With a one-hot target the eps terms are visible: the value differs from plain CE by a known amount.
        var oneHot = Reference.OneHot([1, 2, 3, 4], 10);
        using var hard = TestTensors.ToTensor(oneHot, ScalarType.Float64);
        using var withEps = Losses.SoftTargetKlDivergence(student, hard);
        var ce = Reference.CrossEntropy(s, [1, 2, 3, 4]);
        withEps.item<double>().Should().NotBe(ce);
        withEps.item<double>().Should().BeApproximately(Reference.SoftTargetKl(s, oneHot, 1.0), 1e-12);
    }

    [Fact]
    public void Divergences_are_never_negative_and_zero_grad_at_the_teacher()
    {
        var rng = new Random(5);
        for (var trial = 0; trial < 20; trial++)
        {
            var s = TestTensors.RandomLogits(rng, 3, 6, scale: 10);
            using var student = TestTensors.ToTensor(s);
            using var teacher = TestTensors.ToTensor(TestTensors.RandomLogits(rng, 3, 6, scale: 10));
            using var kl = Losses.KlDivergence(student, teacher, 4.0);
            using var self = Losses.KlDivergence(student, student, 4.0);
            kl.item<float>().Should().BeGreaterThanOrEqualTo(0f);
            self.item<float>().Should().BeGreaterThanOrEqualTo(0f).And.BeLessThan(1e-4f);
        }
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(4.0)]
    public void Gradients_match_finite_differences_in_double(double temperature)
    {
        var rng = new Random(17);
        var s = TestTensors.RandomLogits(rng, 3, 5);
        var t = TestTensors.RandomLogits(rng, 3, 5);
        using var student = TestTensors.ToTensor(s, ScalarType.Float64, requiresGrad: true);
        using var teacher = TestTensors.ToTensor(t, ScalarType.Float64, requiresGrad: true);

        using var kl = Losses.KlDivergence(student, teacher, temperature);
        kl.backward();
        var gradS = TestTensors.ToArrays(student.grad!);
        var gradT = TestTensors.ToArrays(teacher.grad!);

        const double h = 1e-6;
        for (var b = 0; b < 3; b++)
        {
            for (var c = 0; c < 5; c++)
            {
                var numericS = Central(v => { var x = Copy(s); x[b][c] += v; return Reference.Kl(x, t, temperature); }, h);
                var numericT = Central(v => { var x = Copy(t); x[b][c] += v; return Reference.Kl(s, x, temperature); }, h);
                gradS[b][c].Should().BeApproximately(numericS, 1e-7);
                gradT[b][c].Should().BeApproximately(numericT, 1e-7);
            }
        }
    }

    [Fact]
    public void SoftTarget_gradient_matches_finite_differences_in_double()
    {
        var rng = new Random(23);
        var s = TestTensors.RandomLogits(rng, 2, 4);
        var q = TestTensors.RandomDistribution(rng, 2, 4);
        using var student = TestTensors.ToTensor(s, ScalarType.Float64, requiresGrad: true);
        using var target = TestTensors.ToTensor(q, ScalarType.Float64);

        using var skl = Losses.SoftTargetKlDivergence(student, target, 2.0);
        skl.backward();
        var grad = TestTensors.ToArrays(student.grad!);

        for (var b = 0; b < 2; b++)
        {
            for (var c = 0; c < 4; c++)
            {
                var numeric = Central(v => { var x = Copy(s); x[b][c] += v; return Reference.SoftTargetKl(x, q, 2.0); }, 1e-6);
                grad[b][c].Should().BeApproximately(numeric, 1e-7);
            }
        }
    }

    [Fact]
    public void Half_precision_inputs_are_computed_in_float32()
    {
        var rng = new Random(8);
        var s = TestTensors.RandomLogits(rng, 4, 6);
        var t = TestTensors.RandomLogits(rng, 4, 6);
        using var student = TestTensors.ToTensor(s, ScalarType.BFloat16);
        using var teacher = TestTensors.ToTensor(t, ScalarType.BFloat16);

        using var kl = Losses.KlDivergence(student, teacher, 4.0);

        kl.dtype.Should().Be(ScalarType.Float32);
        var rounded = TestTensors.ToArrays(student);
        var roundedT = TestTensors.ToArrays(teacher);
        kl.item<float>().Should().BeApproximately((float)Reference.Kl(rounded, roundedT, 4.0), 1e-5f);
    }

    [Fact]
    public void CrossEntropy_matches_the_reference()
    {
        var rng = new Random(2);
        var z = TestTensors.RandomLogits(rng, 6, 4);
        long[] y = [0, 1, 2, 3, 1, 0];
        using var logits = TestTensors.ToTensor(z, ScalarType.Float64);
        using var labels = tensor(y);
        using var ce = Losses.CrossEntropy(logits, labels);
        ce.item<double>().Should().BeApproximately(Reference.CrossEntropy(z, y), 1e-12);
    }

    [Fact]
    public void Bad_arguments_name_the_argument_and_what_was_expected()
    {
        using var a = zeros(4, 10);
        using var b = zeros(4, 9);
        using var oneD = zeros(10);
        using var labels = tensor(new long[] { 0, 1, 2, 10 });

        var shape = () => Losses.KlDivergence(a, b, 4.0);
        shape.Should().Throw<ArgumentException>().Where(e => e.ParamName == "teacher" && e.Message.Contains("[4, 10]") && e.Message.Contains("[4, 9]"));

        var dims = () => Losses.SoftTargetKlDivergence(oneD, oneD);
        dims.Should().Throw<ArgumentException>().Where(e => e.ParamName == "student" && e.Message.Contains("[batch, classes]") && e.Message.Contains("[10]"));

        var temp = () => Losses.KlDivergence(a, a, 0.0);
        temp.Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "temperature");

        var label = () => Losses.CrossEntropy(a, labels);
        label.Should().Throw<ArgumentException>().Where(e => e.ParamName == "labels" && e.Message.Contains("0..9") && e.Message.Contains("10"));
    }

    [Fact]
    public void Repeated_loss_computations_do_not_leak_tensors()
    {
        using var student = randn(8, 10, requires_grad: true);
        using var teacher = randn(8, 10);
        using var target = teacher.softmax(1);
        void Step()
        {
            using var scope = NewDisposeScope();
            var loss = Losses.KlDivergence(student, teacher, 4.0).add(Losses.SoftTargetKlDivergence(student, target));
            loss.backward();
            student.grad!.zero_();
        }

        Step();
        var before = TestTensors.LiveTensors;
        for (var i = 0; i < 25; i++)
        {
            Step();
        }

        TestTensors.LiveTensors.Should().Be(before);
    }

    private static double Central(Func<double, double> f, double h) => (f(h) - f(-h)) / (2 * h);

    private static double[][] Copy(double[][] x) => x.Select(r => r.ToArray()).ToArray();
}
