namespace DTSKD.Core.Tests;

public class DualTeacherLossTests
{
    private const int Classes = 5;

    [Fact]
    public void Recipe_loss_over_two_epochs_matches_the_reference_formula()
    {
        var rng = new Random(41);
        using var loss = new DualTeacherLoss(branchCount: 3, Classes, sampleCount: 6);
        long[] idx = [4, 0, 2];
        long[] y = [1, 4, 0];
        using var indices = tensor(idx);
        using var labels = tensor(y);
        var oneHot = Reference.OneHot(y, Classes);
        double[][][]? previous = null;
        const int epochs = 10;

        for (var epoch = 0; epoch < 2; epoch++)
        {
            var heads = Enumerable.Range(0, 4).Select(_ => TestTensors.RandomLogits(rng, 3, Classes)).ToArray();
            using var output = new MultiBranchOutput(TestTensors.ToTensor(heads[0]), heads.Skip(1).Select(h => TestTensors.ToTensor(h)).ToArray());

            using var result = loss.Compute(output, labels, indices, epoch, epochs);

            var alpha = Reference.CosineAlpha(0.9, 0.0, epoch, epochs);
            result.Scalars["alpha"].Should().BeApproximately(alpha, 1e-15);
            double[] w = [3.0, 1.0, 1.0, 1.0];
            double supervised = 0;
            for (var h = 0; h < 4; h++)
            {
                var target = previous == null ? oneHot : Reference.Mix(alpha, oneHot, Reference.Softmax(previous[h]));
                var term = Reference.SoftTargetKl(heads[h], target, 1.0);
                var name = h == 0 ? "history/backbone" : $"history/branch{h}";
                result.Components[name].item<float>().Should().BeApproximately((float)term, (float)(1e-5 * Math.Max(term, 1)), name);
                supervised += w[h] * term;
            }

            double kd = 0;
            for (var k = 1; k < 4; k++)
            {
                var term = Reference.Kl(heads[k], heads[0], 4.0);
                result.Components[$"structural/branch{k}"].item<float>().Should().BeApproximately((float)term, (float)(1e-5 * Math.Max(term, 1)));
                kd += term;
            }

            var expected = (0.2 * supervised) + (0.8 * kd);
            result.Total.item<float>().Should().BeApproximately((float)expected, (float)(1e-5 * expected));
            result.Components.Keys.Should().Equal("history/backbone", "history/branch1", "history/branch2", "history/branch3",
                "structural/branch1", "structural/branch2", "structural/branch3");
            previous = heads;
        }
    }

    // docs/method.md: the release never writes its memory, so every target it trains on is the one-hot label;
    // a constant alpha of 1 gives exactly that whatever our (updated) memory holds.
    [Fact]
    public void A_constant_label_weight_of_one_trains_on_the_one_hot_labels_as_the_release_does()
    {
        var rng = new Random(47);
        using var loss = new DualTeacherLoss(branchCount: 3, Classes, sampleCount: 3, new DualTeacherLossOptions { Schedule = CoefficientSchedule.Constant(1) });
        long[] y = [2, 0, 4];
        using var labels = tensor(y);
        using var indices = tensor(new long[] { 0, 1, 2 });
        var oneHot = Reference.OneHot(y, Classes);

        for (var epoch = 0; epoch < 3; epoch++)
        {
            var heads = Enumerable.Range(0, 4).Select(_ => TestTensors.RandomLogits(rng, 3, Classes)).ToArray();
            using var output = new MultiBranchOutput(TestTensors.ToTensor(heads[0]), heads.Skip(1).Select(h => TestTensors.ToTensor(h)).ToArray());

            using var result = loss.Compute(output, labels, indices, epoch, totalEpochs: 3);

            for (var h = 0; h < 4; h++)
            {
                var term = Reference.SoftTargetKl(heads[h], oneHot, 1.0);
                var name = h == 0 ? "history/backbone" : $"history/branch{h}";
                result.Components[name].item<float>().Should().BeApproximately((float)term, (float)(1e-5 * Math.Max(term, 1)), $"epoch {epoch}, {name}");
            }
        }

        loss.HistoricalTeacher!.SeenCount().Should().Be(3, "the memory is still written; alpha = 1 only ignores it");
    }

    [Fact]
    public void Before_the_teachers_speak_every_head_learns_its_labels_while_the_memory_records_and_then_the_recipe_takes_over()
    {
        var rng = new Random(53);
        using var loss = new DualTeacherLoss(branchCount: 3, Classes, sampleCount: 3, new DualTeacherLossOptions { TeachersFromEpoch = 2, StructuralWarmupEpochs = 2 });
        long[] y = [2, 0, 4];
        using var labels = tensor(y);
        using var indices = tensor(new long[] { 0, 1, 2 });
        var oneHot = Reference.OneHot(y, Classes);
        double[][][]? previous = null;
        for (var epoch = 0; epoch < 4; epoch++)
        {
            var heads = Enumerable.Range(0, 4).Select(_ => TestTensors.RandomLogits(rng, 3, Classes)).ToArray();
            using var output = new MultiBranchOutput(TestTensors.ToTensor(heads[0]), heads.Skip(1).Select(h => TestTensors.ToTensor(h)).ToArray());
            using var result = loss.Compute(output, labels, indices, epoch, totalEpochs: 10);

            var teaching = epoch >= 2;
            var alpha = teaching ? Reference.CosineAlpha(0.9, 0.0, epoch, 10) : 1.0;
            result.Scalars["alpha"].Should().BeApproximately(alpha, 1e-15, $"epoch {epoch}");
            result.Scalars["kd_weight"].Should().BeApproximately(teaching ? 0.8 * Math.Min(1.0, (epoch - 2) / 2.0) : 0, 1e-15, "the KD ramp counts from the teachers' first epoch");
            double supervised = 0;
            double[] w = [3.0, 1.0, 1.0, 1.0];
            for (var h = 0; h < 4; h++)
            {
                var target = teaching ? Reference.Mix(alpha, oneHot, Reference.Softmax(previous![h])) : oneHot;
                supervised += w[h] * Reference.SoftTargetKl(heads[h], target, 1.0);
            }

            var kd = Enumerable.Range(1, 3).Sum(k => Reference.Kl(heads[k], heads[0], 4.0));
            var expected = (0.2 * supervised) + (result.Scalars["kd_weight"] * kd);
            result.Total.item<float>().Should().BeApproximately((float)expected, (float)(1e-5 * expected), $"epoch {epoch}");
            previous = heads;
        }
    }

    [Fact]
    public void Detached_branches_send_no_gradient_into_the_backbone()
    {
        manual_seed(5);
        using var model = Models.MultiBranchModels.resnet18_dtskd(numClasses: Classes, baseWidth: 16, neckWidth: 16);
        using var loss = DualTeacherLoss.For(model, 4, new DualTeacherLossOptions { DetachBackbone = true, BackboneWeight = 0 });
        using var images = randn(4, 3, 32, 32);
        using var labels = tensor(new long[] { 0, 1, 2, 3 });
        using var indices = arange(4);
        foreach (var detached in new[] { false, true })
        {
            model.BranchesDetached = detached;
            model.zero_grad();
            using var output = model.call(images);
            using var result = loss.Compute(output, labels, indices, 0, 1);
            result.Total.backward();

            // With the backbone head's weight 0 and a fixed KD target, only the branches' terms are left: they reach the backbone unless detached.
            var conv = model.named_parameters().Single(p => p.name == "conv1.weight").parameter.grad;
            var reached = conv is not null && conv.abs().sum().item<float>() > 0;
            reached.Should().Be(!detached, $"branches detached: {detached}");
            model.parameters().Where(p => p.grad is { } g && g.abs().sum().item<float>() > 0).Should().NotBeEmpty("the neck and branches still learn");
        }
    }

    [Fact]
    public void With_history_off_the_loss_is_backbone_CE_plus_KD()
    {
        var rng = new Random(43);
        var heads = Enumerable.Range(0, 3).Select(_ => TestTensors.RandomLogits(rng, 4, Classes)).ToArray();
        long[] y = [0, 1, 2, 3];
        using var labels = tensor(y);
        using var indices = tensor(new long[] { 0, 1, 2, 3 });
        using var output = new MultiBranchOutput(TestTensors.ToTensor(heads[0]), heads.Skip(1).Select(h => TestTensors.ToTensor(h)).ToArray());
        var options = new DualTeacherLossOptions { UseHistoricalTeacher = false, BranchWeights = [1.0, 1.0], HistoricalWeight = 0.3, StructuralWeight = 0.7 };

        using var loss = new DualTeacherLoss(branchCount: 2, Classes, sampleCount: 4, options);
        using var result = loss.Compute(output, labels, indices, epoch: 5, totalEpochs: 10);

        var expected = (0.3 * Reference.CrossEntropy(heads[0], y)) + (0.7 * (Reference.Kl(heads[1], heads[0], 4) + Reference.Kl(heads[2], heads[0], 4)));
        result.Total.item<float>().Should().BeApproximately((float)expected, (float)(1e-5 * expected));
        result.Components.Keys.Should().Equal("ce/backbone", "structural/branch1", "structural/branch2");
        result.Scalars.Should().BeEmpty();
        loss.HistoricalTeacher.Should().BeNull("no memory is allocated when the historical teacher is off");
    }

    [Fact]
    public void The_small_data_preset_is_the_recipe_with_kd_terms_without_the_T2_factor()
    {
        var rng = new Random(47);
        var heads = Enumerable.Range(0, 4).Select(_ => TestTensors.RandomLogits(rng, 3, Classes)).ToArray();
        long[] y = [1, 4, 0];
        using var labels = tensor(y);
        using var indices = tensor(new long[] { 2, 0, 1 });
        using var output = new MultiBranchOutput(TestTensors.ToTensor(heads[0]), heads.Skip(1).Select(h => TestTensors.ToTensor(h)).ToArray());
        var preset = DualTeacherLossOptions.SmallData();
        preset.ScaleKdByTemperatureSquared.Should().BeFalse();
        preset.Should().BeEquivalentTo(new DualTeacherLossOptions(), o => o.Excluding(x => x.ScaleKdByTemperatureSquared), "everything else is the recipe");
        DualTeacherLossOptions.SmallData().Should().NotBeSameAs(preset, "each call gives options of its own");

        using var recipe = new DualTeacherLoss(branchCount: 3, Classes, sampleCount: 3);
        using var small = new DualTeacherLoss(branchCount: 3, Classes, sampleCount: 3, preset);
        using var a = recipe.Compute(output, labels, indices, epoch: 0, totalEpochs: 10);
        using var b = small.Compute(output, labels, indices, epoch: 0, totalEpochs: 10);

        foreach (var (name, term) in a.Components)
        {
            var expected = name.StartsWith("structural/", StringComparison.Ordinal) ? term.item<float>() / 16 : term.item<float>();
            b.Components[name].item<float>().Should().BeApproximately(expected, 1e-6f * Math.Max(1, Math.Abs(expected)), name);
        }
    }

    [Fact]
    public void Gradients_flow_into_every_head()
    {
        using var loss = new DualTeacherLoss(3, Classes, 8);
        var heads = Enumerable.Range(0, 4).Select(_ => randn(2, Classes, requires_grad: true)).ToArray();
        using var output = new MultiBranchOutput(heads[0].alias(), heads.Skip(1).Select(h => h.alias()).ToArray());
        using var labels = tensor(new long[] { 1, 2 });
        using var indices = tensor(new long[] { 6, 7 });

        using var result = loss.Compute(output, labels, indices, 0, 1);
        result.Total.backward();

        heads.Should().OnlyContain(h => h.grad!.abs().sum().item<float>() > 0);
        foreach (var h in heads)
        {
            h.Dispose();
        }
    }

    [Fact]
    public void Options_are_validated_up_front()
    {
        ((Action)(() => new DualTeacherLoss(3, Classes, 8, new DualTeacherLossOptions { HistoricalWeight = -0.1 })))
            .Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "HistoricalWeight");
        ((Action)(() => new DualTeacherLoss(3, Classes, 8, new DualTeacherLossOptions { Temperature = 0 })))
            .Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "Temperature");
        ((Action)(() => new DualTeacherLoss(3, Classes, 8, new DualTeacherLossOptions { BranchWeights = [1, double.NaN, 1] })))
            .Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "BranchWeights[1]");
        ((Action)(() => new DualTeacherLoss(3, Classes, 8, new DualTeacherLossOptions { BranchWeights = [1, 1] })))
            .Should().Throw<ArgumentException>().WithMessage("*2 weights*3 branches*");
        ((Action)(() => new DualTeacherLoss(3, Classes, 8, new DualTeacherLossOptions { StructuralWarmupEpochs = -1 })))
            .Should().Throw<ArgumentException>().Where(e => e.ParamName == "StructuralWarmupEpochs");
        ((Action)(() => new DualTeacherLossOptions { BranchWeights = [1, 1] }.Validate(branchCount: 3)))
            .Should().Throw<ArgumentException>().WithMessage("*2 weights*3 branches*");
    }

    [Fact]
    public void Mismatched_outputs_labels_and_non_finite_logits_are_rejected()
    {
        using var loss = new DualTeacherLoss(3, Classes, 8);
        using var labels = tensor(new long[] { 1, 2 });
        using var indices = tensor(new long[] { 0, 1 });

        using (var twoBranches = new MultiBranchOutput(randn(2, Classes), [randn(2, Classes), randn(2, Classes)]))
        {
            ((Action)(() => loss.Compute(twoBranches, labels, indices, 0, 10))).Should().Throw<ArgumentException>()
                .Where(e => e.ParamName == "output" && e.Message.Contains("2 branches") && e.Message.Contains('3'));
        }

        using var good = new MultiBranchOutput(randn(2, Classes), [randn(2, Classes), randn(2, Classes), randn(2, Classes)]);
        using var badLabels = tensor(new long[] { 1, Classes });
        ((Action)(() => loss.Compute(good, badLabels, indices, 0, 10))).Should().Throw<ArgumentException>().Where(e => e.ParamName == "labels");
        using var shortLabels = tensor(new long[] { 1 });
        ((Action)(() => loss.Compute(good, shortLabels, indices, 0, 10))).Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "labels" && e.Message.Contains("length 2"));

        var nan = randn(2, Classes);
        nan[1, 3] = tensor(float.NaN);
        using var withNaN = new MultiBranchOutput(randn(2, Classes), [randn(2, Classes), nan, randn(2, Classes)]);
        ((Action)(() => loss.Compute(withNaN, labels, indices, 0, 10))).Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "output.Branches[1]" && e.Message.Contains("NaN"));

        ((Action)(() => new MultiBranchOutput(randn(2, Classes), [randn(3, Classes)]))).Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "branches[0]");
        loss.HistoricalTeacher!.SeenCount().Should().Be(0, "rejected calls do not touch the memory");
    }

    [Fact]
    public void Repeated_steps_with_backward_do_not_leak_tensors()
    {
        using var loss = new DualTeacherLoss(3, Classes, 32);
        using var w = randn(Classes, Classes, requires_grad: true);
        void Step(int i)
        {
            using var scope = NewDisposeScope();
            var x = randn(8, Classes);
            using var output = new MultiBranchOutput(x.matmul(w), [x.matmul(w).mul(0.5), x.matmul(w).mul(2), x.sin()]);
            var idx = arange(i % 4 * 8, (i % 4 * 8) + 8, dtype: ScalarType.Int64);
            var labels = randint(0, Classes, [8], dtype: ScalarType.Int64);
            using var result = loss.Compute(output, labels, idx, i / 4, 10);
            result.Total.backward();
            w.grad!.zero_();
        }

        Step(0);
        var before = TestTensors.LiveTensors;
        for (var i = 1; i < 40; i++)
        {
            Step(i);
        }

        TestTensors.LiveTensors.Should().Be(before);
    }
}
