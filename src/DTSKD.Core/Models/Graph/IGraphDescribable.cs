namespace DTSKD.Core.Models;

/// <summary>
/// A module of your own that says what its forward pass computes, in the layers and operations of a
/// <see cref="LayerGraph"/>, so that a model using it can be exported (to ONNX, with the DTSKD.Core.Onnx package).
/// Standard TorchSharp layers and <c>Sequential</c> containers of them need nothing: <see cref="LayerGraph.Layer"/> knows them.
/// </summary>
public interface IGraphDescribable
{
    /// <summary>Describes the forward pass on one input.</summary>
    /// <param name="graph">The graph to add to; call <see cref="LayerGraph.Layer"/> for each child module, in forward's order.</param>
    /// <param name="input">The module's input.</param>
    /// <returns>The module's output.</returns>
    GraphValue Describe(LayerGraph graph, GraphValue input);
}
