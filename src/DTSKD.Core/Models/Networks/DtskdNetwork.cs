using static TorchSharp.torch;

namespace DTSKD.Core.Models;

/// <summary>
/// What the release's multi-branch networks share: a backbone that yields K stage maps and a pooled feature, a backbone
/// head, and a <see cref="BranchNeck"/> whose parts sit at the top level under the release's names.
/// </summary>
internal abstract class DtskdNetwork : MultiBranchModule, IBackboneSource
{
    private BranchNeck? _neck;

    protected DtskdNetwork(string name, MultiBranchModelOptions options)
        : base(name)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        TorchSharpRuntime.EnsureLoaded();
        Options = options;
    }

    /// <summary>The size options the model was built with.</summary>
    public MultiBranchModelOptions Options { get; }

    /// <inheritdoc />
    public override int ClassCount => Options.ClassCount;

    /// <inheritdoc />
    public override int BranchCount => Neck.BranchCount;

    private BranchNeck Neck => _neck ?? throw new InvalidOperationException("The network has no neck yet.");

    /// <summary>Runs the backbone, its head and the neck.</summary>
    /// <param name="input">Images, [B, InputChannels, H, W].</param>
    /// <returns>Backbone logits and the branch logits b1..bK.</returns>
    public override MultiBranchOutput forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() != 4 || input.shape[1] != Options.InputChannels)
        {
            throw new ArgumentException(
                $"input must be [batch, {Options.InputChannels}, height, width]; got {TensorChecks.Shape(input)}.", nameof(input));
        }

        using var scope = NewDisposeScope();
        var (stages, feature) = Backbone(input);
        var logits = Head(feature.flatten(1));
        var (neckStages, neckFeature) = NeckInputs(stages, feature);
        var branches = Neck.call(neckStages, neckFeature);
        return new MultiBranchOutput(logits, branches).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public IEnumerable<(string Name, nn.Module Module)> BackboneChildren()
    {
        var neck = Neck.named_children().Select(c => c.name).ToHashSet(StringComparer.Ordinal);
        return named_children().Where(c => !neck.Contains(c.name)).Select(c => (c.name, c.module));
    }

    /// <inheritdoc />
    public Tensor BackboneLogits(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var scope = NewDisposeScope();
        return Head(Backbone(input).Feature.flatten(1)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public Tensor BackboneFeature(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var scope = NewDisposeScope();
        return Backbone(input).Feature.flatten(1).MoveToOuterDisposeScope();
    }

    /// <summary>The stage maps that get a branch (shallowest first) and the pooled final feature [B, F, 1, 1].</summary>
    /// <inheritdoc />
    public IReadOnlyList<GraphValue> DescribeHeads(LayerGraph graph, GraphValue input, bool branches)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var (stages, feature) = DescribeBackbone(graph, input);
        var logits = DescribeHead(graph, graph.Flatten(feature));
        return branches ? [logits, .. Neck.Describe(graph, stages, feature)] : [logits];
    }

    protected abstract (IReadOnlyList<Tensor> Stages, Tensor Feature) Backbone(Tensor input);

    /// <summary><see cref="Backbone"/> as a graph, with the children's state-dict names.</summary>
    protected abstract (IReadOnlyList<GraphValue> Stages, GraphValue Feature) DescribeBackbone(LayerGraph graph, GraphValue input);

    /// <summary><see cref="Head"/> as a graph.</summary>
    protected abstract GraphValue DescribeHead(LayerGraph graph, GraphValue feature);

    /// <summary><see cref="ResNetBackbone"/> as a graph.</summary>
    protected (IReadOnlyList<GraphValue> Stages, GraphValue Feature) DescribeResNet(
        LayerGraph graph, GraphValue input, nn.Module conv1, nn.Module bn1, IReadOnlyList<nn.Module> layers)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var x = DescribeStemPool(graph, graph.Relu(graph.Layer(bn1, graph.Layer(conv1, input, "conv1"), "bn1")));
        var stages = new GraphValue[layers.Count];
        for (var s = 0; s < stages.Length; s++)
        {
            x = stages[s] = graph.Layer(layers[s], x, $"layer{s + 1}");
        }

        return (stages[..^1], graph.GlobalAveragePool(stages[^1]));
    }

    /// <summary><see cref="StemPool"/> as a graph.</summary>
    protected GraphValue DescribeStemPool(LayerGraph graph, GraphValue x)
    {
        ArgumentNullException.ThrowIfNull(graph);
        return Options.Stem == ModelStem.ImageNet ? graph.MaxPool(x, (3, 3), (2, 2), (1, 1), ceilMode: false) : x;
    }

    /// <summary>The backbone head: logits from the flattened feature [B, F].</summary>
    protected abstract Tensor Head(Tensor feature);

    /// <summary>
    /// The CIFAR ResNet family's backbone (ResNet and the release's ResNeXt): stem, then the stages in turn; the branches
    /// read every stage but the last, whose pooled map is the feature.
    /// </summary>
    protected (IReadOnlyList<Tensor> Stages, Tensor Feature) ResNetBackbone(
        Tensor input, nn.Module<Tensor, Tensor> conv1, nn.Module<Tensor, Tensor> bn1, IReadOnlyList<nn.Module<Tensor, Tensor>> layers)
    {
        var x = StemPool(nn.functional.relu(bn1.call(conv1.call(input))));
        var stages = new Tensor[layers.Count];
        for (var s = 0; s < stages.Length; s++)
        {
            x = stages[s] = layers[s].call(x);
        }

        return (stages[..^1], nn.functional.adaptive_avg_pool2d(stages[^1], 1));
    }

    /// <summary>The ImageNet stem's 3x3 max-pool of stride 2 (padding 1), or nothing for the CIFAR stem.</summary>
    protected Tensor StemPool(Tensor x) =>
        Options.Stem == ModelStem.ImageNet ? nn.functional.max_pool2d(x, kernel_size: 3, stride: 2, padding: 1) : x;

    /// <summary>The stem's first convolution: 3x3 of stride 1 (CIFAR) or, with the ImageNet stem, <paramref name="imageNetKernel"/> of stride 2.</summary>
    protected nn.Module<Tensor, Tensor> StemConv(long inChannels, long outChannels, int imageNetKernel, bool bias) =>
        Options.Stem == ModelStem.ImageNet
            ? nn.Conv2d(inChannels, outChannels, kernel_size: imageNetKernel, stride: 2, padding: imageNetKernel / 2, bias: bias)
            : nn.Conv2d(inChannels, outChannels, kernel_size: 3, stride: 1, padding: 1, bias: bias);

    /// <summary>Registers the neck's parts at the top level, as the release names them (after the backbone's).</summary>
    protected void RegisterNeck(BranchNeck neck)
    {
        _neck = neck;
        foreach (var (childName, child) in neck.named_children())
        {
            register_module(childName, child);
        }
    }

    // Every component is registered explicitly, so that the neck's parts keep the release's top-level names and the
    // neck object itself is not registered a second time.
    /// <inheritdoc />
    protected override void RegisterComponents()
    {
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _neck?.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <summary>Channels scaled from the reference's (at base width 64) to the options' base width, at least 1.</summary>
    protected int Scaled(int reference) => Math.Max(1, reference * Options.BaseWidth / 64);
}
