using static TorchSharp.torch;
using TorchSharp.Modules;
using static TorchSharp.torch.nn;

namespace DTSKD.Core.Models;

/// <summary>
/// The DTSKD branch neck: a top-down pathway over a backbone's intermediate stages that ends in one
/// classifier per stage (the branch heads).
/// </summary>
/// <remarks>
/// <para>
/// For stages s_1..s_K with channels c_1..c_K and a final pooled feature f (B × F × 1 × 1), with neck width W:
/// <c>laterals[i]</c> = [AdaptiveAvgPool2d(1), 1×1 conv c_i→W, BN, ReLU];
/// <c>upsample[i]</c> = [1×1 conv →W, BN, ReLU] (no spatial upsampling happens: everything is 1 × 1);
/// <c>fuse_{i+1}</c> = [1×1 conv 2W→W, BN, ReLU]; <c>fc_b{i+1}</c> = Linear W→C.
/// Starting from t = f and going from the deepest stage down:
/// <c>u = upsample[i](t); t = fuse_{i+1}(cat([u + laterals[i](s_i), u])); z_{b(i+1)} = fc_b{i+1}(flatten(t))</c>.
/// </para>
/// <para>
/// With K = 3, F = W = 512 this is exactly the neck of the release's ResNets, VGG16 and ResNeXt18, with their parameter
/// names. The release's ShuffleNetV2 varies it (<see cref="NeckLayout.ShuffleNet"/>): each lateral convolves before it
/// pools ([1×1 conv c_i→W, BN, ReLU, pool, 1×1 conv W→W, BN, ReLU]), and the deepest step's upsample is a separate
/// <c>up_conv</c>, so <c>upsample</c> holds K − 1 entries. Branch logits come back in the order b1..bK (shallowest stage first).
/// </para>
/// </remarks>
internal sealed class BranchNeck : Module<IReadOnlyList<Tensor>, Tensor, IReadOnlyList<Tensor>>
{
    private readonly ModuleList<Sequential> laterals;
    private readonly ModuleList<Sequential> upsample;
    private readonly Sequential[] _fuses;
    private readonly Sequential? up_conv;
    private readonly Linear[] _heads;

    /// <summary>Builds the neck.</summary>
    /// <param name="stageChannels">Channels of the intermediate stages that get a branch, shallowest first (K entries).</param>
    /// <param name="featureChannels">F, the channels of the backbone's final pooled feature.</param>
    /// <param name="classCount">C, the number of classes of every branch head.</param>
    /// <param name="neckWidth">W, the neck's channel width (512 in the reference).</param>
    /// <param name="layout">The release's layout to follow.</param>
    public BranchNeck(IReadOnlyList<int> stageChannels, int featureChannels, int classCount, int neckWidth = 512, NeckLayout layout = NeckLayout.Standard)
        : base(nameof(BranchNeck))
    {
        ArgumentNullException.ThrowIfNull(stageChannels);
        if (stageChannels.Count == 0 || stageChannels.Any(c => c <= 0))
        {
            throw new ArgumentException("stageChannels must list at least one stage, each with a positive channel count.", nameof(stageChannels));
        }

        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(featureChannels, 0);
        ArgumentOutOfRangeException.ThrowIfLessThan(classCount, 2);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(neckWidth, 0);
        TorchSharpRuntime.EnsureLoaded();

        var k = stageChannels.Count;
        StageChannels = [.. stageChannels];
        FeatureChannels = featureChannels;
        NeckWidth = neckWidth;
        ClassCount = classCount;

        var shuffle = layout == NeckLayout.ShuffleNet;
        laterals = new ModuleList<Sequential>(stageChannels
            .Select(c => shuffle
                ? Sequential(
                    Conv2d(c, neckWidth, kernel_size: 1, bias: false), BatchNorm2d(neckWidth), ReLU(), AdaptiveAvgPool2d(1),
                    Conv2d(neckWidth, neckWidth, kernel_size: 1, bias: false), BatchNorm2d(neckWidth), ReLU())
                : Sequential(AdaptiveAvgPool2d(1), Conv2d(c, neckWidth, kernel_size: 1, bias: false), BatchNorm2d(neckWidth), ReLU()))
            .ToArray());
        upsample = new ModuleList<Sequential>(Enumerable.Range(0, shuffle ? k - 1 : k)
            .Select(i => ConvBnRelu(i == k - 1 ? featureChannels : neckWidth, neckWidth)).ToArray());
        up_conv = shuffle ? ConvBnRelu(featureChannels, neckWidth) : null;
        _fuses = Enumerable.Range(0, k).Select(_ => ConvBnRelu(2 * neckWidth, neckWidth)).ToArray();
        _heads = Enumerable.Range(0, k).Select(_ => Linear(neckWidth, classCount)).ToArray();

        // Registration order is the release's state-dict order.
        register_module(nameof(laterals), laterals);
        register_module(nameof(upsample), upsample);
        for (var i = 0; i < k; i++)
        {
            register_module($"fuse_{i + 1}", _fuses[i]);
        }

        if (up_conv is not null)
        {
            register_module(nameof(up_conv), up_conv);
        }

        for (var i = 0; i < k; i++)
        {
            register_module($"fc_b{i + 1}", _heads[i]);
        }
    }

    /// <summary>The channels of the stages that get a branch, shallowest first.</summary>
    public IReadOnlyList<int> StageChannels { get; }

    /// <summary>F, the channels of the final pooled feature.</summary>
    public int FeatureChannels { get; }

    /// <summary>W, the neck width.</summary>
    public int NeckWidth { get; }

    /// <summary>C, the number of classes.</summary>
    public int ClassCount { get; }

    /// <summary>K, the number of branches.</summary>
    public int BranchCount => _heads.Length;

    /// <summary>Runs the top-down pathway.</summary>
    /// <param name="stages">The K intermediate stage outputs, shallowest first, each [B, c_i, H_i, W_i].</param>
    /// <param name="feature">The final pooled feature, [B, F, 1, 1] or [B, F].</param>
    /// <returns>The K branch logits [B, C], in order b1..bK.</returns>
    public override IReadOnlyList<Tensor> forward(IReadOnlyList<Tensor> stages, Tensor feature)
    {
        ArgumentNullException.ThrowIfNull(stages);
        ArgumentNullException.ThrowIfNull(feature);
        if (stages.Count != BranchCount)
        {
            throw new ArgumentException($"stages must hold {BranchCount} stage outputs; got {stages.Count}.", nameof(stages));
        }

        using var scope = NewDisposeScope();
        var t = feature.dim() == 2 ? feature.view(feature.shape[0], feature.shape[1], 1, 1) : feature;
        var logits = new Tensor[BranchCount];
        for (var i = BranchCount - 1; i >= 0; i--)
        {
            var u = i == BranchCount - 1 && up_conv is not null ? up_conv.call(t) : upsample[i].call(t);

            // IList overload: the array and span overloads only exist from TorchSharp 0.106 on.
            t = _fuses[i].call(cat(new List<Tensor> { u.add(laterals[i].call(stages[i])), u }, 1));
            logits[i] = _heads[i].call(t.flatten(1));
        }

        foreach (var l in logits)
        {
            l.MoveToOuterDisposeScope();
        }

        return logits;
    }

    /// <summary><see cref="forward"/> as a graph, with the children's names at the network's top level (as registered there).</summary>
    public IReadOnlyList<GraphValue> Describe(LayerGraph graph, IReadOnlyList<GraphValue> stages, GraphValue feature)
    {
        var t = graph.AsMap(feature);
        var logits = new GraphValue[BranchCount];
        for (var i = BranchCount - 1; i >= 0; i--)
        {
            var u = i == BranchCount - 1 && up_conv is not null ? graph.Layer(up_conv, t, nameof(up_conv)) : graph.Layer(upsample[i], t, $"upsample.{i}");
            var lateral = graph.Layer(laterals[i], stages[i], $"laterals.{i}");
            t = graph.Layer(_fuses[i], graph.ConcatChannels([graph.Add(u, lateral), u]), $"fuse_{i + 1}");
            logits[i] = graph.Layer(_heads[i], graph.Flatten(t), $"fc_b{i + 1}");
        }

        return logits;
    }

    // The registered children are what count; fields here are for fast typed access in forward.
    /// <inheritdoc />
    protected override void RegisterComponents()
    {
    }

    private static Sequential ConvBnRelu(long inChannels, long outChannels) =>
        Sequential(Conv2d(inChannels, outChannels, kernel_size: 1, bias: false), BatchNorm2d(outChannels), ReLU());
}
