using DTSKD.Core.Models;
using TorchSharp.Modules;
using static TorchSharp.torch.nn;

namespace DTSKD.Core.Tests;

public class ModelTests
{
    private static readonly MultiBranchModelOptions Tiny = new() { ClassCount = 10, InputChannels = 1, BaseWidth = 16, NeckWidth = 16 };

    /// <summary>The release's five networks: our name, and the name of its state-dict listing in TestData.</summary>
    public static TheoryData<string, string> ReferenceModels => new()
    {
        { "resnet18_dtskd", "resnet18_dtskd" },
        { "resnet34_dtskd", "resnet34_dtskd" },
        { "vgg16_dtskd", "vgg16_dtskd" },
        { "resnext18_dtskd", "resnext18_dtskd" },
        { "shufflev2_dtskd", "shufflenetv2_dtskd" },
    };

    private static List<(string Name, string Shape)> ReferenceStateDict(string listing) =>
        [.. File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "TestData", $"ref_{listing}_c100_state_dict.tsv"))
            .Where(l => l.Length > 0)
            .Select(l => l.Split('\t'))
            .Select(p => (p[0], p.Length > 1 ? p[1] : string.Empty))];

    [Theory]
    [MemberData(nameof(ReferenceModels))]
    public void State_dict_names_shapes_and_order_equal_the_reference(string name, string listing)
    {
        var expected = ReferenceStateDict(listing);
        static bool IsBuffer(string key) =>
            key.EndsWith("running_mean", StringComparison.Ordinal) || key.EndsWith("running_var", StringComparison.Ordinal) || key.EndsWith("num_batches_tracked", StringComparison.Ordinal);

        using var model = MultiBranchModels.Create(name);
        var actual = model.state_dict().Select(kv => (kv.Key, string.Join("x", kv.Value.shape))).ToList();

        actual.Select(a => a.Key).Except(expected.Select(e => e.Name)).Should().BeEmpty("no state beyond the reference's");
        expected.Select(e => e.Name).Except(actual.Select(a => a.Key)).Should().BeEmpty("no reference state is missing");
        actual.Should().BeEquivalentTo(expected, "every name has the reference's shape");

        // PyTorch lists each module's parameters then its buffers; TorchSharp lists all parameters, then all buffers.
        // Loading goes by name either way; what must match is the order of the parameters, and of the buffers, among themselves.
        model.named_parameters().Select(p => p.name).Should().Equal(expected.Where(e => !IsBuffer(e.Name)).Select(e => e.Name), "PyTorch's parameter order");
        model.named_buffers().Select(b => b.name).Should().Equal(expected.Where(e => IsBuffer(e.Name)).Select(e => e.Name), "PyTorch's buffer order");
    }

    [Theory]
    [MemberData(nameof(ReferenceModels))]
    public void Parameter_counts_match_the_reference(string name, string listing)
    {
        // The listing holds parameters and buffers; BatchNorm's statistics and counters are the buffers.
        var expected = ReferenceStateDict(listing)
            .Where(e => !e.Name.EndsWith("running_mean", StringComparison.Ordinal) && !e.Name.EndsWith("running_var", StringComparison.Ordinal)
                        && !e.Name.EndsWith("num_batches_tracked", StringComparison.Ordinal))
            .Sum(e => e.Shape.Split('x').Aggregate(1L, (a, d) => a * long.Parse(d, System.Globalization.CultureInfo.InvariantCulture)));

        using var model = MultiBranchModels.Create(name);
        model.parameters().Sum(p => p.numel()).Should().Be(expected);
        model.BranchCount.Should().Be(3);
        model.ClassCount.Should().Be(100);
    }

    [Theory]
    [InlineData("resnet18_dtskd", 13_971_920)]
    [InlineData("resnet34_dtskd", 24_080_080)]
    public void The_resnets_have_the_specs_parameter_counts(string name, long count)
    {
        using var model = MultiBranchModels.Create(name);
        model.parameters().Sum(p => p.numel()).Should().Be(count);
    }

    [Theory]
    [MemberData(nameof(ReferenceModels))]
    public void Every_network_maps_cifar_and_fashion_mnist_batches_to_four_heads(string name, string listing)
    {
        _ = listing;
        using var scope = NewDisposeScope();
        using var rgb = MultiBranchModels.Create(name, new MultiBranchModelOptions { BaseWidth = 16, NeckWidth = 32 });
        using var gray = MultiBranchModels.Create(name, new MultiBranchModelOptions { ClassCount = 10, InputChannels = 1, BaseWidth = 16, NeckWidth = 32 });
        foreach (var (model, input, classes) in new[] { (rgb, randn(2, 3, 32, 32), 100L), (gray, randn(2, 1, 28, 28), 10L) })
        {
            model.train();
            using var output = model.call(input);
            output.Heads.Should().HaveCount(4).And.OnlyContain(h => h.shape.SequenceEqual(new long[] { 2, classes }));
            output.Heads.Should().OnlyContain(h => h.isfinite().all().item<bool>());
        }
    }

    [Fact]
    public void Reference_model_maps_a_cifar_batch_to_four_heads_of_100_logits()
    {
        using var model = ResNetDtskd.ResNet18();
        model.eval();
        using var scope = NewDisposeScope();
        using var output = model.call(randn(2, 3, 32, 32));
        output.Heads.Should().HaveCount(4).And.OnlyContain(h => h.shape.SequenceEqual(new long[] { 2, 100 }));
    }

    [Fact]
    public void Small_grayscale_model_maps_28x28_input_and_counts_its_branches()
    {
        using var model = ResNetDtskd.ResNet18(Tiny);
        using var scope = NewDisposeScope();
        using var output = model.call(randn(3, 1, 28, 28));
        output.BranchCount.Should().Be(3);
        output.Heads.Should().OnlyContain(h => h.shape.SequenceEqual(new long[] { 3, 10 }));
        ((Action)(() => model.call(randn(3, 3, 28, 28)))).Should().Throw<ArgumentException>().WithMessage("*[batch, 1, height, width]*[3, 3, 28, 28]*");
    }

    [Fact]
    public void Eval_mode_is_deterministic()
    {
        manual_seed(1);
        using var model = ResNetDtskd.ResNet18(Tiny);
        model.eval();
        using var scope = NewDisposeScope();
        var x = randn(4, 1, 28, 28);
        using var a = model.call(x);
        using var b = model.call(x);
        for (var h = 0; h < 4; h++)
        {
            a.Heads[h].allclose(b.Heads[h], rtol: 0, atol: 0).Should().BeTrue();
        }
    }

    [Fact]
    public void Forward_follows_the_reference_wiring()
    {
        // The spec's wiring (dtskd.md §8), written out with the model's own named parts, in eval mode.
        manual_seed(7);
        using var model = ResNetDtskd.ResNet18(new MultiBranchModelOptions { ClassCount = 5, BaseWidth = 16, NeckWidth = 16 });
        model.eval();
        var parts = model.named_children().ToDictionary(c => c.name, c => c.module);
        Tensor Run(string name, Tensor x) => ((Module<Tensor, Tensor>)parts[name]).call(x);
        Tensor Seq(string name, int i, Tensor x) => ((ModuleList<Sequential>)parts[name])[i].call(x);

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var input = randn(2, 3, 16, 16);
        var s0 = functional.relu(Run("bn1", Run("conv1", input)));
        var s1 = Run("layer1", s0);
        var s2 = Run("layer2", s1);
        var s3 = Run("layer3", s2);
        var s4 = Run("layer4", s3);
        var f = functional.adaptive_avg_pool2d(s4, 1);
        var z0 = Run("fc", f.flatten(1));
        var u3 = Seq("upsample", 2, f);
        var t3 = Run("fuse_3", cat([u3 + Seq("laterals", 2, s3), u3], 1));
        var u2 = Seq("upsample", 1, t3);
        var t2 = Run("fuse_2", cat([u2 + Seq("laterals", 1, s2), u2], 1));
        var u1 = Seq("upsample", 0, t2);
        var t1 = Run("fuse_1", cat([u1 + Seq("laterals", 0, s1), u1], 1));
        var expected = new[] { z0, Run("fc_b1", t1.flatten(1)), Run("fc_b2", t2.flatten(1)), Run("fc_b3", t3.flatten(1)) };

        using var output = model.call(input);
        for (var h = 0; h < 4; h++)
        {
            output.Heads[h].allclose(expected[h], rtol: 0, atol: 1e-6).Should().BeTrue($"head {h}");
        }

        s4.shape.Should().Equal(2, 128, 2, 2);
        ((Sequential)parts["laterals"].named_children().First().module).children().Count().Should().Be(4, "[pool, conv, bn, relu]");
    }

    [Fact]
    public void A_small_model_trains_with_the_dual_teacher_loss_and_does_not_leak_tensors()
    {
        manual_seed(3);
        using var model = ResNetDtskd.ResNet18(Tiny);
        model.train();
        using var loss = DualTeacherLoss.For(model, 32);
        using var optimizer = optim.SGD(model.parameters(), 0.05, momentum: 0.9);
        using var images = randn(32, 1, 28, 28);
        using var labels = randint(0, 10, [32], dtype: ScalarType.Int64);
        var first = double.NaN;
        var last = double.NaN;

        void Step(int i)
        {
            using var scope = NewDisposeScope();
            var idx = arange(i % 4 * 8, (i % 4 * 8) + 8, dtype: ScalarType.Int64);
            using var output = model.call(images.index_select(0, idx));
            using var result = loss.Compute(output, labels.index_select(0, idx), idx, i / 4, 5);
            optimizer.zero_grad();
            result.Total.backward();
            optimizer.step();
            last = result.Total.item<float>();
            if (i == 0)
            {
                first = last;
            }
        }

        Step(0);
        var live = TestTensors.LiveTensors;
        for (var i = 1; i < 20; i++)
        {
            Step(i);
        }

        TestTensors.LiveTensors.Should().Be(live);
        double.IsFinite(last).Should().BeTrue();
        last.Should().BeLessThan(first, "a few steps on the same 32 images lower the loss");
    }

    [Theory]
    [InlineData("resnet18_dtskd", "conv1.weight", 7)]
    [InlineData("resnet34_dtskd", "conv1.weight", 7)]
    [InlineData("resnext18_dtskd", "conv1.0.weight", 7)]
    [InlineData("shufflev2_dtskd", "pre.0.weight", 3)]
    public void The_imagenet_stem_quarters_the_resolution_and_keeps_the_state_dict_names(string name, string stemWeight, int kernel)
    {
        manual_seed(8);
        using var cifar = MultiBranchModels.Create(name, new MultiBranchModelOptions { ClassCount = 10, BaseWidth = 16, NeckWidth = 16 });
        using var imagenet = MultiBranchModels.Create(name, new MultiBranchModelOptions { ClassCount = 10, BaseWidth = 16, NeckWidth = 16, Stem = ModelStem.ImageNet });

        imagenet.state_dict().Keys.Should().Equal(cifar.state_dict().Keys, "the names torchvision's models and the release use");
        imagenet.state_dict()[stemWeight].shape[2..].Should().Equal(kernel, kernel);
        var first = imagenet.modules().OfType<TorchSharp.Modules.Conv2d>().First();
        first.stride.Should().Equal(2, 2);

        // 64x64 in: the CIFAR stem's first stage works at 64x64, the ImageNet stem's at 16x16.
        using var scope = NewDisposeScope();
        var seen = new List<long>();
        var hook = imagenet.modules().OfType<TorchSharp.Modules.Conv2d>().Skip(1).First()
            .register_forward_hook((_, input, output) => { seen.Add(input.shape[2]); return output; });
        imagenet.eval();
        using var output = imagenet.call(randn(2, 3, 64, 64));
        hook.remove();
        seen.Should().Equal(16);
        output.Heads.Should().OnlyContain(h => h.shape.SequenceEqual(new long[] { 2, 10 }));
    }

    [Fact]
    public void Registry_is_case_insensitive_and_lists_the_known_names_for_an_unknown_one()
    {
        MultiBranchModels.Names.Should().Equal("resnet18_dtskd", "resnet34_dtskd", "resnext18_dtskd", "shufflev2_dtskd", "vgg16_dtskd");
        using (var alias = MultiBranchModels.Create("shufflenetv2_dtskd", Tiny))
        {
            alias.GetType().Should().Be<ShuffleNetV2Dtskd>("the release's file name is accepted as an alias");
        }

        using var model = MultiBranchModels.Create("ResNet18_DTSKD", Tiny);
        model.ClassCount.Should().Be(10);
        ((Action)(() => MultiBranchModels.Create("resnet18_dtkd"))).Should().Throw<ArgumentException>()
            .WithMessage("Unknown model 'resnet18_dtkd'. Known models: resnet18_dtskd, resnet34_dtskd, resnext18_dtskd, shufflev2_dtskd, vgg16_dtskd.*");
        ((Action)(() => ResNetDtskd.ResNet18(new MultiBranchModelOptions { NeckWidth = 0 }))).Should().Throw<ArgumentOutOfRangeException>()
            .Where(e => e.ParamName == "NeckWidth");
    }

    [Fact]
    public void Factories_build_what_the_registry_builds_on_the_requested_device()
    {
        using var byFactory = MultiBranchModels.resnet18_dtskd(numClasses: 10, inputChannels: 1, baseWidth: 16, neckWidth: 16, device: CPU);
        using var byName = MultiBranchModels.Create("resnet18_dtskd", Tiny);
        byFactory.BranchCount.Should().Be(3);
        byFactory.ClassCount.Should().Be(10);
        byFactory.state_dict().ToDictionary(kv => kv.Key, kv => string.Join("x", kv.Value.shape))
            .Should().Equal(byName.state_dict().ToDictionary(kv => kv.Key, kv => string.Join("x", kv.Value.shape)));
        byFactory.parameters().Should().OnlyContain(p => p.device_type == DeviceType.CPU);
        using var r34 = MultiBranchModels.resnet34_dtskd();
        r34.parameters().Sum(p => p.numel()).Should().Be(24_080_080);
    }

    [Fact]
    public void Neck_names_follow_the_number_of_stages()
    {
        using var neck = new BranchNeck([8, 16], featureChannels: 32, classCount: 4, neckWidth: 12);
        neck.BranchCount.Should().Be(2);
        neck.state_dict().Keys.Where(k => k.EndsWith(".weight", StringComparison.Ordinal) && !k.Contains("laterals") && !k.Contains("upsample"))
            .Should().BeEquivalentTo("fuse_1.0.weight", "fuse_1.1.weight", "fuse_2.0.weight", "fuse_2.1.weight", "fc_b1.weight", "fc_b2.weight");
        neck.state_dict()["upsample.1.0.weight"].shape.Should().Equal(12, 32, 1, 1);
        neck.state_dict()["upsample.0.0.weight"].shape.Should().Equal(12, 12, 1, 1);
    }

    [Fact]
    public void A_user_backbone_becomes_multi_branch_and_trains_one_step()
    {
        manual_seed(5);
        using var model = new MultiBranchNetwork(new TwoStageBackbone(), stageChannels: [16, 32], featureChannels: 32, classCount: 3, neckWidth: 16);
        model.BranchCount.Should().Be(2);
        model.state_dict().Keys.Should().Contain(["backbone.stage1.weight", "fc.weight", "neck.fuse_2.0.weight", "neck.fc_b2.bias"]);
        using var loss = DualTeacherLoss.For(model, 4);
        using var optimizer = optim.SGD(model.parameters(), 0.1);
        var before = model.parameters().Select(p => p.detach().clone()).ToList();

        using (var scope = NewDisposeScope())
        {
            using var output = model.call(randn(4, 1, 8, 8));
            using var result = loss.Compute(output, tensor(new long[] { 0, 1, 2, 0 }), arange(4, dtype: ScalarType.Int64), 0, 1);
            result.Total.backward();
            optimizer.step();
        }

        model.parameters().Zip(before).Should().OnlyContain(pair => !pair.First.allclose(pair.Second, rtol: 0, atol: 0), "every parameter receives gradient");
        before.ForEach(t => t.Dispose());
    }

    [Fact]
    public void A_user_backbone_with_the_wrong_stage_count_fails_clearly()
    {
        using var model = new MultiBranchNetwork(new TwoStageBackbone(), stageChannels: [16, 32, 32], featureChannels: 32, classCount: 3);
        ((Action)(() => model.call(randn(1, 1, 8, 8)))).Should().Throw<InvalidOperationException>().WithMessage("*returned 2 stage maps*built for 3*");
    }

    private sealed class TwoStageBackbone : Module<Tensor, BackboneFeatures>
    {
        private readonly Conv2d stage1 = Conv2d(1, 16, 3, padding: 1);
        private readonly Conv2d stage2 = Conv2d(16, 32, 3, stride: 2, padding: 1);

        public TwoStageBackbone() : base(nameof(TwoStageBackbone)) => RegisterComponents();

        public override BackboneFeatures forward(Tensor input)
        {
            var s1 = functional.relu(stage1.call(input));
            var s2 = functional.relu(stage2.call(s1));
            return new BackboneFeatures([s1, s2], functional.adaptive_avg_pool2d(s2, 1));
        }
    }
}
