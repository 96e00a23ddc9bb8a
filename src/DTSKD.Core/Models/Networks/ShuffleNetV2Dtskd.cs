using static TorchSharp.torch;
using TorchSharp.Modules;
using static TorchSharp.torch.nn;

namespace DTSKD.Core.Models;

/// <summary>
/// The release's <c>shufflev2_dtskd</c>: ShuffleNetV2 at ratio 1 (a 3×3 stem of 24 channels, stages of 4, 8 and 4
/// shuffle units with 116, 232 and 464 channels, a 1×1 conv to 1024) with the release's ShuffleNet neck layout
/// (<see cref="NeckLayout.ShuffleNet"/>) over the three stages.
/// </summary>
/// <remarks>
/// A unit that keeps its shape splits the channels in two, passes one half through and runs the other through
/// [1×1 conv, BN, ReLU, 3×3 depthwise conv, BN, 1×1 conv, BN, ReLU]; a unit that downsamples runs both halves of that
/// from the whole input (a depthwise branch as the shortcut). Both end in concatenation and a channel shuffle of two
/// groups. Every convolution of the backbone has a bias, as in the release; the stem has no ReLU. PyTorch's default
/// initialisation, as in the release. At other widths every channel count scales by BaseWidth/64, rounded to an even
/// number where the units split channels in two.
/// </remarks>
internal sealed class ShuffleNetV2Dtskd : DtskdNetwork
{
    private readonly Sequential pre;
    private readonly Sequential[] _stages;
    private readonly Sequential conv5;
    private readonly Linear fc;

    internal ShuffleNetV2Dtskd(MultiBranchModelOptions options)
        : base("shufflev2_dtskd", options)
    {
        var stem = Scaled(24);
        int[] channels = [Even(Scaled(116)), Even(Scaled(232)), Even(Scaled(464)), Scaled(1024)];
        pre = Sequential(StemConv(options.InputChannels, stem, imageNetKernel: 3, bias: true), BatchNorm2d(stem));
        _stages = new Sequential[3];
        var inChannels = stem;
        foreach (var (s, repeat) in new[] { (0, 3), (1, 7), (2, 3) })
        {
            var units = new List<Module<Tensor, Tensor>> { new ShuffleUnit(inChannels, channels[s], 2) };
            units.AddRange(Enumerable.Range(0, repeat).Select(_ => new ShuffleUnit(channels[s], channels[s], 1)));
            _stages[s] = Sequential(units.ToArray());
            inChannels = channels[s];
        }

        conv5 = Sequential(Conv2d(channels[2], channels[3], kernel_size: 1), BatchNorm2d(channels[3]), ReLU());
        fc = Linear(channels[3], options.ClassCount);
        register_module(nameof(pre), pre);
        for (var s = 0; s < 3; s++)
        {
            register_module($"stage{s + 2}", _stages[s]);
        }

        register_module(nameof(conv5), conv5);
        register_module(nameof(fc), fc);
        RegisterNeck(new BranchNeck(channels[..3], channels[3], options.ClassCount, options.NeckWidth ?? 1024, NeckLayout.ShuffleNet));
    }

    /// <inheritdoc />
    protected override (IReadOnlyList<Tensor> Stages, Tensor Feature) Backbone(Tensor input)
    {
        var x = StemPool(pre.call(input));
        var stages = new Tensor[3];
        for (var s = 0; s < 3; s++)
        {
            x = stages[s] = _stages[s].call(x);
        }

        return (stages, functional.adaptive_avg_pool2d(conv5.call(x), 1));
    }

    /// <inheritdoc />
    protected override Tensor Head(Tensor feature) => fc.call(feature);

    protected override (IReadOnlyList<GraphValue> Stages, GraphValue Feature) DescribeBackbone(LayerGraph graph, GraphValue input)
    {
        var x = DescribeStemPool(graph, graph.Layer(pre, input, nameof(pre)));
        var stages = new GraphValue[3];
        for (var s = 0; s < 3; s++)
        {
            x = stages[s] = graph.Layer(_stages[s], x, $"stage{s + 2}");
        }

        return (stages, graph.GlobalAveragePool(graph.Layer(conv5, x, nameof(conv5))));
    }

    protected override GraphValue DescribeHead(LayerGraph graph, GraphValue feature) => graph.Layer(fc, feature, nameof(fc));

    private static int Even(int channels) => Math.Max(2, (channels + 1) / 2 * 2);

    /// <summary>The release's ShuffleUnit.</summary>
    private sealed class ShuffleUnit : Module<Tensor, Tensor>, IGraphDescribable
    {
        private readonly Sequential residual;
        private readonly Sequential shortcut;
        private readonly bool _split;

        public ShuffleUnit(int inChannels, int outChannels, int stride)
            : base(nameof(ShuffleUnit))
        {
            _split = stride == 1 && inChannels == outChannels;
            var half = outChannels / 2;
            if (_split)
            {
                residual = Sequential(
                    Conv2d(half, half, kernel_size: 1), BatchNorm2d(half), ReLU(),
                    Conv2d(half, half, kernel_size: 3, stride: 1, padding: 1, groups: half), BatchNorm2d(half),
                    Conv2d(half, half, kernel_size: 1), BatchNorm2d(half), ReLU());
                shortcut = Sequential();
            }
            else
            {
                residual = Sequential(
                    Conv2d(inChannels, inChannels, kernel_size: 1), BatchNorm2d(inChannels), ReLU(),
                    Conv2d(inChannels, inChannels, kernel_size: 3, stride: stride, padding: 1, groups: inChannels), BatchNorm2d(inChannels),
                    Conv2d(inChannels, half, kernel_size: 1), BatchNorm2d(half), ReLU());
                shortcut = Sequential(
                    Conv2d(inChannels, inChannels, kernel_size: 3, stride: stride, padding: 1, groups: inChannels), BatchNorm2d(inChannels),
                    Conv2d(inChannels, half, kernel_size: 1), BatchNorm2d(half), ReLU());
            }

            // The release's state-dict order: residual, then shortcut.
            register_module(nameof(residual), residual);
            register_module(nameof(shortcut), shortcut);
        }

        public override Tensor forward(Tensor input)
        {
            using var scope = NewDisposeScope();
            Tensor passed, processed;
            if (_split)
            {
                var half = input.shape[1] / 2;
                (passed, processed) = (input.narrow(1, 0, half), residual.call(input.narrow(1, half, half)));
            }
            else
            {
                (passed, processed) = (shortcut.call(input), residual.call(input));
            }

            // Channel shuffle with two groups: [a0 a1 .. | b0 b1 ..] becomes [a0 b0 a1 b1 ..].
            var x = cat(new List<Tensor> { passed, processed }, 1);
            var (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
            return x.view(b, 2, c / 2, h, w).transpose(1, 2).contiguous().view(b, c, h, w).MoveToOuterDisposeScope();
        }

        /// <inheritdoc />
        public GraphValue Describe(LayerGraph graph, GraphValue input)
        {
            GraphValue passed, processed;
            if (_split)
            {
                var halves = graph.SplitChannels(input, 2);
                (passed, processed) = (halves[0], graph.Layer(residual, halves[1], nameof(residual)));
            }
            else
            {
                (passed, processed) = (graph.Layer(shortcut, input, nameof(shortcut)), graph.Layer(residual, input, nameof(residual)));
            }

            return graph.ChannelShuffle(graph.ConcatChannels([passed, processed]), 2);
        }

        protected override void RegisterComponents()
        {
        }
    }
}
