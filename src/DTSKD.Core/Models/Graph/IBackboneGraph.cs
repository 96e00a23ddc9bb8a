namespace DTSKD.Core.Models;

/// <summary>
/// A backbone of your own (the <c>Module&lt;Tensor, BackboneFeatures&gt;</c> of a <see cref="MultiBranchNetwork"/>) that says
/// what its forward pass computes, so that the network can be exported (to ONNX, with the DTSKD.Core.Onnx package).
/// </summary>
public interface IBackboneGraph
{
    /// <summary>Describes the forward pass: what <see cref="BackboneFeatures"/> holds, as graph values.</summary>
    /// <param name="graph">The graph to add to; call <see cref="LayerGraph.Layer"/> for each child module, in forward's order.</param>
    /// <param name="input">The image batch.</param>
    /// <returns>The stage maps the branches read, and the pooled feature the head reads.</returns>
    (IReadOnlyList<GraphValue> Stages, GraphValue Feature) Describe(LayerGraph graph, GraphValue input);
}
