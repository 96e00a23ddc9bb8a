using static TorchSharp.torch;
using TorchSharp.Modules;
using static TorchSharp.torch.nn;

namespace DTSKD.Core.Models;

/// <summary>
/// The release's <c>vgg16_dtskd</c>: a CIFAR VGG16 with BatchNorm (conv1, conv2, then stages of 2, 3, 3 and 3
/// convolutions each closed by a 2×2 max pool), a three-layer classifier head, and the standard <see cref="BranchNeck"/>
/// over the first three stages (128, 256 and 512 channels at the reference width).
/// </summary>
/// <remarks>
/// The release's own initialisation is applied: convolutions He-normal (fan out, ReLU) with zero bias, BatchNorm 1 and 0,
/// linear layers normal(0, 0.01) with zero bias. The release's dropout is commented out, so there is none. The max pools
/// round up (<c>ceil_mode</c>), which changes nothing on the release's 32×32 inputs and lets 28×28 inputs through all five.
/// </remarks>
internal sealed class VggDtskd : DtskdNetwork
{
    private readonly Module<Tensor, Tensor> conv1;
    private readonly Module<Tensor, Tensor> bn1;
    private readonly Module<Tensor, Tensor> conv2;
    private readonly Module<Tensor, Tensor> bn2;
    private readonly Sequential[] _layers;
    private readonly Sequential classifier;

    internal VggDtskd(MultiBranchModelOptions options)
        : base("vgg16_dtskd", options)
    {
        var (w64, w128, w256, w512) = (Scaled(64), Scaled(128), Scaled(256), Scaled(512));
        conv1 = Conv2d(options.InputChannels, w64, kernel_size: 3, padding: 1);
        bn1 = BatchNorm2d(w64);
        conv2 = Conv2d(w64, w64, kernel_size: 3, padding: 1);
        bn2 = BatchNorm2d(w64);
        var channels = w64;
        _layers = new Sequential[4];
        foreach (var (s, width, convolutions) in new[] { (0, w128, 2), (1, w256, 3), (2, w512, 3), (3, w512, 3) })
        {
            _layers[s] = Stage(channels, width, convolutions);
            channels = width;
        }
        classifier = Sequential(Linear(w512, w512), ReLU(), Linear(w512, w512), ReLU(), Linear(w512, options.ClassCount));

        register_module(nameof(conv1), conv1);
        register_module(nameof(bn1), bn1);
        register_module(nameof(conv2), conv2);
        register_module(nameof(bn2), bn2);
        for (var s = 0; s < 4; s++)
        {
            register_module($"layer{s + 1}", _layers[s]);
        }

        register_module(nameof(classifier), classifier);
        RegisterNeck(new BranchNeck([w128, w256, w512], w512, options.ClassCount, options.NeckWidth ?? 512));

        using var noGrad = no_grad();
        foreach (var module in modules())
        {
            switch (module)
            {
                case Conv2d conv:
                    init.kaiming_normal_(conv.weight, mode: init.FanInOut.FanOut, nonlinearity: init.NonlinearityType.ReLU);
                    ZeroBias(conv.bias);
                    break;
                case BatchNorm2d bn:
                    init.constant_(bn.weight, 1);
                    ZeroBias(bn.bias);
                    break;
                case Linear linear:
                    init.normal_(linear.weight, 0, 0.01);
                    ZeroBias(linear.bias);
                    break;
            }
        }
    }

    /// <inheritdoc />
    protected override (IReadOnlyList<Tensor> Stages, Tensor Feature) Backbone(Tensor input)
    {
        var x = functional.relu(bn1.call(conv1.call(input)));
        x = MaxPool(functional.relu(bn2.call(conv2.call(x))));
        var stages = new Tensor[4];
        for (var s = 0; s < 4; s++)
        {
            x = stages[s] = _layers[s].call(x);
        }

        return (stages[..3], functional.adaptive_avg_pool2d(stages[3], 1));
    }

    /// <inheritdoc />
    protected override Tensor Head(Tensor feature) => classifier.call(feature);

    protected override (IReadOnlyList<GraphValue> Stages, GraphValue Feature) DescribeBackbone(LayerGraph graph, GraphValue input)
    {
        var x = graph.Relu(graph.Layer(bn1, graph.Layer(conv1, input, nameof(conv1)), nameof(bn1)));
        x = graph.MaxPool(graph.Relu(graph.Layer(bn2, graph.Layer(conv2, x, nameof(conv2)), nameof(bn2))), (2, 2), (2, 2), (0, 0), ceilMode: true);
        var stages = new GraphValue[4];
        for (var s = 0; s < 4; s++)
        {
            x = stages[s] = graph.Layer(_layers[s], x, $"layer{s + 1}");
        }

        return (stages[..3], graph.GlobalAveragePool(stages[3]));
    }

    protected override GraphValue DescribeHead(LayerGraph graph, GraphValue feature) => graph.Layer(classifier, feature, nameof(classifier));

    private static Tensor MaxPool(Tensor x) => functional.max_pool2d(x, kernel_size: 2, stride: 2, ceil_mode: true);

    private static Sequential Stage(int channels, int width, int convolutions)
    {
        var layers = new List<Module<Tensor, Tensor>>();
        for (var i = 0; i < convolutions; i++)
        {
            layers.AddRange([Conv2d(i == 0 ? channels : width, width, kernel_size: 3, padding: 1), BatchNorm2d(width), ReLU()]);
        }

        layers.Add(MaxPool2d(kernel_size: 2, stride: 2, ceil_mode: true));
        return Sequential(layers.ToArray());
    }

    private static void ZeroBias(Tensor? bias)
    {
        if (bias is not null)
        {
            init.zeros_(bias);
        }
    }
}
