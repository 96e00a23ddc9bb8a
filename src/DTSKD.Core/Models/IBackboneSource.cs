using static TorchSharp.torch;

namespace DTSKD.Core.Models;

/// <summary>A multi-branch network whose backbone and head can run alone: what <see cref="BackboneClassifier"/> exports.</summary>
internal interface IBackboneSource
{
    /// <summary>The network's registered children that belong to the backbone and its head, by their names, in order.</summary>
    IEnumerable<(string Name, nn.Module Module)> BackboneChildren();

    /// <summary>The backbone head's logits for a batch, without the neck or the branches.</summary>
    Tensor BackboneLogits(Tensor input);

    /// <summary>The pooled feature the backbone head reads, [batch, features].</summary>
    Tensor BackboneFeature(Tensor input);

    /// <summary>The forward pass as a graph: the backbone head's logits, then with <paramref name="branches"/> each branch's.</summary>
    /// <exception cref="NotSupportedException">A part of the network cannot be described; the message names it.</exception>
    IReadOnlyList<GraphValue> DescribeHeads(LayerGraph graph, GraphValue input, bool branches);
}
