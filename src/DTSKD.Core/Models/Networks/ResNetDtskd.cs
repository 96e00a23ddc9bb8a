using static TorchSharp.torch;
using TorchSharp.Modules;
using static TorchSharp.torch.nn;

namespace DTSKD.Core.Models;

/// <summary>
/// The release's multi-branch CIFAR ResNets (<c>resnet18_dtskd</c>, <c>resnet34_dtskd</c>): a CIFAR-style ResNet with
/// BasicBlocks, and a <see cref="BranchNeck"/> over its first three stages giving three branch heads.
/// </summary>
/// <remarks>
/// Built to the reference's letter: the same layers, wiring, default (PyTorch) initialisation, and the same state-dict
/// names and shapes (<c>conv1</c>, <c>bn1</c>, <c>layer1..4</c>, <c>fc</c>, and the neck's <c>laterals.*</c>,
/// <c>upsample.*</c>, <c>fuse_1..3</c>, <c>fc_b1..3</c> at the top level), so weights can be exchanged with the PyTorch release.
/// </remarks>
internal sealed class ResNetDtskd : DtskdNetwork
{
    private readonly Module<Tensor, Tensor> conv1;
    private readonly Module<Tensor, Tensor> bn1;
    private readonly Sequential[] _layers;
    private readonly Linear fc;

    private ResNetDtskd(string name, int[] blocks, MultiBranchModelOptions options)
        : base(name, options)
    {
        var widths = Enumerable.Range(0, 4).Select(s => options.BaseWidth << s).ToArray();
        conv1 = StemConv(options.InputChannels, widths[0], imageNetKernel: 7, bias: false);
        bn1 = BatchNorm2d(widths[0]);
        _layers = new Sequential[4];
        long inPlanes = widths[0];
        for (var s = 0; s < 4; s++)
        {
            var stride = s == 0 ? 1 : 2;
            var stage = new List<Module<Tensor, Tensor>>();
            for (var b = 0; b < blocks[s]; b++)
            {
                stage.Add(new BasicBlock(inPlanes, widths[s], b == 0 ? stride : 1));
                inPlanes = widths[s];
            }

            _layers[s] = Sequential(stage.ToArray());
        }

        fc = Linear(widths[3], options.ClassCount);
        register_module(nameof(conv1), conv1);
        register_module(nameof(bn1), bn1);
        for (var s = 0; s < 4; s++)
        {
            register_module($"layer{s + 1}", _layers[s]);
        }

        register_module(nameof(fc), fc);
        RegisterNeck(new BranchNeck(widths[..3], widths[3], options.ClassCount, options.NeckWidth ?? 512));
    }

    /// <summary>Builds <c>resnet18_dtskd</c> (BasicBlocks [2, 2, 2, 2]); 13,971,920 parameters with the default options.</summary>
    /// <param name="options">Size options; null for the reference (CIFAR-100).</param>
    internal static ResNetDtskd ResNet18(MultiBranchModelOptions? options = null) =>
        new("resnet18_dtskd", [2, 2, 2, 2], options ?? new MultiBranchModelOptions());

    /// <summary>Builds <c>resnet34_dtskd</c> (BasicBlocks [3, 4, 6, 3]); 24,080,080 parameters with the default options.</summary>
    /// <param name="options">Size options; null for the reference (CIFAR-100).</param>
    internal static ResNetDtskd ResNet34(MultiBranchModelOptions? options = null) =>
        new("resnet34_dtskd", [3, 4, 6, 3], options ?? new MultiBranchModelOptions());

    /// <inheritdoc />
    protected override (IReadOnlyList<Tensor> Stages, Tensor Feature) Backbone(Tensor input) =>
        ResNetBackbone(input, conv1, bn1, _layers);

    /// <inheritdoc />
    protected override Tensor Head(Tensor feature) => fc.call(feature);

    protected override (IReadOnlyList<GraphValue> Stages, GraphValue Feature) DescribeBackbone(LayerGraph graph, GraphValue input) =>
        DescribeResNet(graph, input, conv1, bn1, _layers);

    protected override GraphValue DescribeHead(LayerGraph graph, GraphValue feature) => graph.Layer(fc, feature, nameof(fc));
}
