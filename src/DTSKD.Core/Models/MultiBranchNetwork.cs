using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace DTSKD.Core.Models;

/// <summary>
/// Turns any staged backbone into an <see cref="IMultiBranchModel"/>: a linear backbone head on its final
/// feature, and a <see cref="BranchNeck"/> with one branch per stage it yields.
/// </summary>
/// <example>
/// <code>
/// // myBackbone: nn.Module&lt;Tensor, BackboneFeatures&gt; yielding 2 stages (32 and 64 channels) and a 128-d feature.
/// var model = new MultiBranchNetwork(myBackbone, stageChannels: [32, 64], featureChannels: 128, classCount: 10, neckWidth: 128);
/// // model.BranchCount == 2; parameters are named backbone.*, fc.*, neck.*
/// </code>
/// </example>
public sealed class MultiBranchNetwork : MultiBranchModule, IBackboneSource
{
    private readonly Module<Tensor, BackboneFeatures> backbone;
    private readonly Linear fc;
    private readonly BranchNeck neck;

    /// <summary>Wraps a backbone.</summary>
    /// <param name="backbone">A module that returns its stage maps (one per branch, shallowest first) and its final feature.</param>
    /// <param name="stageChannels">The channels of each stage map the backbone returns.</param>
    /// <param name="featureChannels">F, the channels of the final feature.</param>
    /// <param name="classCount">C, the number of classes.</param>
    /// <param name="neckWidth">W, the neck width (512 in the reference; smaller for small backbones).</param>
    public MultiBranchNetwork(Module<Tensor, BackboneFeatures> backbone, IReadOnlyList<int> stageChannels, int featureChannels, int classCount, int neckWidth = 512)
        : base(nameof(MultiBranchNetwork))
    {
        ArgumentNullException.ThrowIfNull(backbone);
        this.backbone = backbone;
        neck = new BranchNeck(stageChannels, featureChannels, classCount, neckWidth);
        fc = Linear(featureChannels, classCount);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override int ClassCount => neck.ClassCount;

    /// <inheritdoc />
    public override int BranchCount => neck.BranchCount;

    /// <inheritdoc />
    public IEnumerable<(string Name, nn.Module Module)> BackboneChildren() => [(nameof(backbone), backbone), (nameof(fc), fc)];

    /// <inheritdoc />
    public Tensor BackboneLogits(Tensor input)
    {
        using var scope = NewDisposeScope();
        return fc.call(backbone.call(input).Feature.flatten(1)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    Tensor IBackboneSource.BackboneFeature(Tensor input)
    {
        using var scope = NewDisposeScope();
        return backbone.call(input).Feature.flatten(1).MoveToOuterDisposeScope();
    }

    /// <summary>The forward pass as a graph; the backbone must implement <see cref="IBackboneGraph"/>.</summary>
    IReadOnlyList<GraphValue> IBackboneSource.DescribeHeads(LayerGraph graph, GraphValue input, bool branches)
    {
        if (backbone is not IBackboneGraph described)
        {
            throw new NotSupportedException(
                $"Cannot export 'backbone' ({backbone.GetType().FullName}): its forward pass is unknown to the exporter. Implement IBackboneGraph on it: " +
                "describe with LayerGraph.Layer the layers its forward calls, and return its stage maps and feature.");
        }

        var (stages, feature) = graph.Within(nameof(backbone), () => described.Describe(graph, input));
        var logits = graph.Layer(fc, graph.Flatten(feature), nameof(fc));
        return branches ? [logits, .. neck.Describe(graph, stages, feature)] : [logits];
    }

    /// <inheritdoc />
    public override MultiBranchOutput forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var features = backbone.call(input);
        if (features.Stages.Count != BranchCount)
        {
            throw new InvalidOperationException(
                $"The backbone returned {features.Stages.Count} stage maps; this network was built for {BranchCount} (stageChannels).");
        }

        for (var i = 0; i < BranchCount; i++)
        {
            if (features.Stages[i].dim() != 4 || features.Stages[i].shape[1] != neck.StageChannels[i])
            {
                throw new InvalidOperationException(
                    $"Stage {i} of the backbone has shape {TensorChecks.Shape(features.Stages[i])}; expected [B, {neck.StageChannels[i]}, H, W].");
            }
        }

        var feature = features.Feature.flatten(1);
        if (feature.shape[1] != neck.FeatureChannels)
        {
            throw new InvalidOperationException(
                $"The backbone's feature has shape {TensorChecks.Shape(features.Feature)}; expected [B, {neck.FeatureChannels}] or [B, {neck.FeatureChannels}, 1, 1].");
        }

        var logits = fc.call(feature);
        var (stages, neckFeature) = NeckInputs(features.Stages, feature);
        var branches = neck.call(stages, neckFeature);
        return new MultiBranchOutput(logits, branches).MoveToOuterDisposeScope();
    }
}
