using DTSKD.Core.Models;
using TorchSharp.Modules;
using static TorchSharp.torch.nn;

namespace DTSKD.Core.Tests;

public class BackboneClassifierTests
{
    [Theory]
    [MemberData(nameof(ModelTests.ReferenceModels), MemberType = typeof(ModelTests))]
    public void The_exported_classifier_gives_the_backbone_heads_logits_and_holds_only_the_backbone(string name, string listing)
    {
        _ = listing;
        manual_seed(2);
        using var model = MultiBranchModels.Create(name, new MultiBranchModelOptions { ClassCount = 10, BaseWidth = 16, NeckWidth = 32 });
        model.eval();
        using var backbone = BackboneClassifier.From(model);

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = randn(3, 3, 32, 32);
        using var output = model.call(x);
        var logits = backbone.call(x);

        (logits - output.Backbone).abs().max().item<float>().Should().BeLessThanOrEqualTo(1e-6f);
        var names = backbone.state_dict().Keys.ToList();
        names.Should().NotContain(n => n.StartsWith("laterals", StringComparison.Ordinal) || n.StartsWith("upsample", StringComparison.Ordinal)
                                       || n.StartsWith("fuse_", StringComparison.Ordinal) || n.StartsWith("fc_b", StringComparison.Ordinal) || n.StartsWith("up_conv", StringComparison.Ordinal));
        names.Should().Equal(model.state_dict().Keys.Where(names.Contains), "the backbone's entries, in the model's order");
    }

    // docs/models.md's "backbone alone" column: 11,220,132 parameters for resnet18_dtskd, 1,360,896 for shufflev2_dtskd, ...
    [Theory]
    [InlineData("resnet18_dtskd", 11_220_132L)]
    [InlineData("resnet34_dtskd", 21_328_292L)]
    [InlineData("vgg16_dtskd", 15_299_748L)]
    [InlineData("resnext18_dtskd", 22_209_444L)]
    [InlineData("shufflev2_dtskd", 1_360_896L)]
    public void At_the_reference_size_the_classifier_keeps_every_parameter_outside_the_neck(string name, long count)
    {
        using var model = MultiBranchModels.Create(name);
        using var backbone = BackboneClassifier.From(model);

        backbone.parameters().Sum(p => p.numel()).Should().Be(count);
        var neck = model.named_parameters()
            .Where(p => new[] { "laterals", "upsample", "up_conv", "fuse_", "fc_b" }.Any(prefix => p.name.StartsWith(prefix, StringComparison.Ordinal)))
            .Sum(p => p.parameter.numel());
        (count + neck).Should().Be(model.parameters().Sum(p => p.numel()), "backbone and neck partition the model");
    }

    [Fact]
    public void The_resnet18_backbone_is_the_plain_cifar_resnet18()
    {
        using var model = MultiBranchModels.resnet18_dtskd();
        using var backbone = BackboneClassifier.From(model);

        backbone.parameters().Sum(p => p.numel()).Should().Be(11_220_132, "the plain CIFAR ResNet-18 with 100 classes");
        backbone.named_parameters().Select(p => p.name).Should().StartWith(["conv1.weight", "bn1.weight"]).And.EndWith(["fc.weight", "fc.bias"]);
        backbone.state_dict().Keys.Should().Contain("layer2.0.downsample.0.weight");
    }

    [Fact]
    public void A_user_network_exports_its_backbone_and_head_and_other_models_are_refused()
    {
        using var network = new MultiBranchNetwork(new TinyBackbone(), [16], 32, classCount: 4, neckWidth: 16);
        using var backbone = BackboneClassifier.From(network);
        backbone.state_dict().Keys.Should().OnlyContain(k => k.StartsWith("backbone.", StringComparison.Ordinal) || k.StartsWith("fc.", StringComparison.Ordinal));

        using var other = new NotOurs();
        ((Action)(() => BackboneClassifier.From(other))).Should().Throw<ArgumentException>().WithMessage("*NotOurs is not a DTSKD.Core network*");
    }

    private sealed class TinyBackbone : Module<Tensor, BackboneFeatures>
    {
        private readonly Conv2d stage = Conv2d(3, 16, 3, padding: 1);
        private readonly Conv2d last = Conv2d(16, 32, 3, stride: 2, padding: 1);

        public TinyBackbone() : base(nameof(TinyBackbone)) => RegisterComponents();

        public override BackboneFeatures forward(Tensor input)
        {
            var s = functional.relu(stage.call(input));
            return new BackboneFeatures([s], functional.adaptive_avg_pool2d(functional.relu(last.call(s)), 1));
        }
    }

    private sealed class NotOurs : Module<Tensor, MultiBranchOutput>, IMultiBranchModel
    {
        public NotOurs() : base(nameof(NotOurs))
        {
        }

        public int ClassCount => 2;

        public int BranchCount => 1;

        public override MultiBranchOutput forward(Tensor input) => new(zeros(1, 2), [zeros(1, 2)]);
    }
}
