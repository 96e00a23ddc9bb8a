using static TorchSharp.torch;
using TorchSharp.Modules;
using static TorchSharp.torch.nn;

namespace DTSKD.Core.Models;

/// <summary>The two-convolution residual block of ResNet-18/34.</summary>
internal sealed class BasicBlock : Module<Tensor, Tensor>, IGraphDescribable
{
    private readonly Module<Tensor, Tensor> conv1;
    private readonly Module<Tensor, Tensor> bn1;
    private readonly Module<Tensor, Tensor> conv2;
    private readonly Module<Tensor, Tensor> bn2;

    // An empty Sequential when the shape is kept, as in the reference (it has no state).
    private readonly Sequential downsample;
    private readonly bool _hasDownsample;

    public BasicBlock(long inPlanes, long planes, long stride) : base(nameof(BasicBlock))
    {
        conv1 = Conv2d(inPlanes, planes, kernel_size: 3, stride: stride, padding: 1, bias: false);
        bn1 = BatchNorm2d(planes);
        conv2 = Conv2d(planes, planes, kernel_size: 3, stride: 1, padding: 1, bias: false);
        bn2 = BatchNorm2d(planes);
        _hasDownsample = stride != 1 || inPlanes != planes;
        downsample = _hasDownsample
            ? Sequential(Conv2d(inPlanes, planes, kernel_size: 1, stride: stride, bias: false), BatchNorm2d(planes))
            : Sequential();
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = functional.relu(bn1.call(conv1.call(input)));
        x = bn2.call(conv2.call(x));
        var shortcut = _hasDownsample ? downsample.call(input) : input;
        return x.add_(shortcut).relu_().MoveToOuterDisposeScope();
    }

    public GraphValue Describe(LayerGraph graph, GraphValue input)
    {
        var x = graph.Relu(graph.Layer(bn1, graph.Layer(conv1, input, nameof(conv1)), nameof(bn1)));
        x = graph.Layer(bn2, graph.Layer(conv2, x, nameof(conv2)), nameof(bn2));
        return graph.Relu(graph.Add(x, _hasDownsample ? graph.Layer(downsample, input, nameof(downsample)) : input));
    }
}
