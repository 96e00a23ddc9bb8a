using static TorchSharp.torch;
using TorchSharp.Modules;
using static TorchSharp.torch.nn;

namespace DTSKD.Core.Models;

/// <summary>
/// The release's <c>resnext18_dtskd</c>: a CIFAR ResNet-18 whose blocks widen to twice their planes inside
/// (3×3 conv in→2p, 3×3 conv 2p→p), with the standard <see cref="BranchNeck"/> over its first three stages.
/// </summary>
/// <remarks>
/// The release names it ResNeXt and passes a group count to its blocks, but the blocks never use it: every convolution is
/// dense, and so is this one. Its stem is a one-convolution Sequential (<c>conv1.0</c>), and a block has a
/// <c>downsample</c> only where the shape changes. The release's own initialisation is applied to every convolution,
/// the neck's included: normal(0, √(2 / (k·k·out))); BatchNorm 1 and 0; linear layers keep PyTorch's default.
/// </remarks>
internal sealed class ResNeXtDtskd : DtskdNetwork
{
    private readonly Sequential conv1;
    private readonly Module<Tensor, Tensor> bn1;
    private readonly Sequential[] _layers;
    private readonly Linear fc;

    internal ResNeXtDtskd(MultiBranchModelOptions options)
        : base("resnext18_dtskd", options)
    {
        var planes = Enumerable.Range(0, 4).Select(s => options.BaseWidth << s).ToArray();
        conv1 = Sequential(StemConv(options.InputChannels, planes[0], imageNetKernel: 7, bias: false));
        bn1 = BatchNorm2d(planes[0]);
        var inPlanes = planes[0];
        _layers = new Sequential[4];
        for (var s = 0; s < 4; s++)
        {
            var stride = s == 0 ? 1 : 2;
            _layers[s] = Sequential(new WideBlock(inPlanes, planes[s], stride), new WideBlock(planes[s], planes[s], 1));
            inPlanes = planes[s];
        }

        fc = Linear(planes[3], options.ClassCount);
        register_module(nameof(conv1), conv1);
        register_module(nameof(bn1), bn1);
        for (var s = 0; s < 4; s++)
        {
            register_module($"layer{s + 1}", _layers[s]);
        }

        register_module(nameof(fc), fc);
        RegisterNeck(new BranchNeck(planes[..3], planes[3], options.ClassCount, options.NeckWidth ?? 512));

        using var noGrad = no_grad();
        foreach (var module in modules())
        {
            switch (module)
            {
                case Conv2d conv:
                    var fan = conv.weight!.shape[0] * conv.weight.shape[2] * conv.weight.shape[3];
                    init.normal_(conv.weight, 0, Math.Sqrt(2.0 / fan));
                    break;
                case BatchNorm2d bn:
                    init.constant_(bn.weight, 1);
                    init.zeros_(bn.bias);
                    break;
            }
        }
    }

    /// <inheritdoc />
    protected override (IReadOnlyList<Tensor> Stages, Tensor Feature) Backbone(Tensor input) =>
        ResNetBackbone(input, conv1, bn1, _layers);

    /// <inheritdoc />
    protected override Tensor Head(Tensor feature) => fc.call(feature);

    protected override (IReadOnlyList<GraphValue> Stages, GraphValue Feature) DescribeBackbone(LayerGraph graph, GraphValue input) =>
        DescribeResNet(graph, input, conv1, bn1, _layers);

    protected override GraphValue DescribeHead(LayerGraph graph, GraphValue feature) => graph.Layer(fc, feature, nameof(fc));

    /// <summary>The release's ResNeXt block: 3×3 conv in→2p (stride), BN, ReLU, 3×3 conv 2p→p, BN, plus the shortcut, ReLU.</summary>
    private sealed class WideBlock : Module<Tensor, Tensor>, IGraphDescribable
    {
        private readonly Module<Tensor, Tensor> conv1;
        private readonly Module<Tensor, Tensor> bn1;
        private readonly Module<Tensor, Tensor> conv2;
        private readonly Module<Tensor, Tensor> bn2;
        private readonly Sequential? downsample;

        public WideBlock(int inPlanes, int planes, int stride)
            : base(nameof(WideBlock))
        {
            conv1 = Conv2d(inPlanes, planes * 2, kernel_size: 3, stride: stride, padding: 1, bias: false);
            bn1 = BatchNorm2d(planes * 2);
            conv2 = Conv2d(planes * 2, planes, kernel_size: 3, padding: 1, bias: false);
            bn2 = BatchNorm2d(planes);
            downsample = stride != 1 || inPlanes != planes
                ? Sequential(Conv2d(inPlanes, planes, kernel_size: 1, stride: stride, bias: false), BatchNorm2d(planes))
                : null;
            RegisterComponents();
        }

        public override Tensor forward(Tensor input)
        {
            using var scope = NewDisposeScope();
            var x = bn2.call(conv2.call(functional.relu(bn1.call(conv1.call(input)))));
            return x.add_(downsample?.call(input) ?? input).relu_().MoveToOuterDisposeScope();
        }

        public GraphValue Describe(LayerGraph graph, GraphValue input)
        {
            var x = graph.Relu(graph.Layer(bn1, graph.Layer(conv1, input, nameof(conv1)), nameof(bn1)));
            x = graph.Layer(bn2, graph.Layer(conv2, x, nameof(conv2)), nameof(bn2));
            return graph.Relu(graph.Add(x, downsample is null ? input : graph.Layer(downsample, input, nameof(downsample))));
        }
    }
}
