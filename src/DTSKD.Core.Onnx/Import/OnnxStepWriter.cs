using DTSKD.Core.Models;
using Onnx;
using static TorchSharp.torch;

namespace DTSKD.Core.Onnx.Import;

/// <summary>What an imported node needs to write itself again: nodes of any operator, and tensors as initializers.</summary>
internal sealed class OnnxStepWriter(OnnxGraphWriter graph, string prefix, GraphValue input)
{
    private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal) { [OnnxGraphWriter.NameOf(input)] = input.Id };

    /// <summary>The graph's name of the image input.</summary>
    public string InputName => OnnxGraphWriter.NameOf(input);

    /// <summary>Adds a node; returns the names of its outputs.</summary>
    public IReadOnlyList<string> Node(string opType, IReadOnlyList<string> inputs, IEnumerable<AttributeProto> attributes, int outputs = 1)
    {
        var values = graph.Node(opType, inputs, [.. Enumerable.Repeat(0L, outputs)], attributes);
        foreach (var v in values)
        {
            _ids[OnnxGraphWriter.NameOf(v)] = v.Id;
        }

        return [.. values.Select(OnnxGraphWriter.NameOf)];
    }

    /// <summary>Adds a one-output node; returns its output's name.</summary>
    public string Single(string opType, IReadOnlyList<string> inputs, params AttributeProto[] attributes) => Node(opType, inputs, attributes)[0];

    /// <summary>A trained or constant tensor as an initializer (float32, or int64 for integers).</summary>
    public string Tensor(string name, Tensor value) => graph.Constant($"{prefix}.{name}", value);

    /// <summary>An int64 vector initializer.</summary>
    public string Longs(string name, params long[] values)
    {
        using var t = tensor(values, [values.LongLength]);
        return Tensor(name, t);
    }

    /// <summary>A float32 scalar initializer.</summary>
    public string Scalar(string name, float value)
    {
        using var t = tensor(value);
        return Tensor(name, t);
    }

    /// <summary>A value of the writer's graph, as the <see cref="LayerGraph"/> knows it.</summary>
    public GraphValue Value(string name, long channels) => new(_ids[name], channels);
}
