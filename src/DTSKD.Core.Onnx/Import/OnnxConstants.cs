using Onnx;
using static TorchSharp.torch;

namespace DTSKD.Core.Onnx.Import;

/// <summary>
/// The graph's values known before any image: initializers (also those listed as graph inputs), Constant nodes, and
/// every node computed from them alone, evaluated once (weights shared through Identity, Constant-node weights, shapes
/// and Clip bounds built from constants). Which of them are the file's weights is remembered, so those train.
/// </summary>
internal sealed class OnnxConstants : IDisposable
{
    /// <summary>The operators that only move a weight's values (its values stay a weight of the file).</summary>
    private static readonly HashSet<string> Layout = new(StringComparer.Ordinal) { "Identity", "Reshape", "Unsqueeze", "Squeeze", "Transpose", "Flatten", "Cast" };

    private readonly Dictionary<string, Tensor> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _weights = new(StringComparer.Ordinal);

    /// <summary>The constant named so, or null.</summary>
    public Tensor? Get(string name) => _values.GetValueOrDefault(name);

    /// <summary>Whether a constant is a weight of the file: a float initializer of more than one value, or one moved by a layout operator.</summary>
    public bool IsWeight(string name) => _weights.Contains(name);

    /// <summary>The nodes evaluated here (their outputs are constants), by index into the graph's nodes.</summary>
    public HashSet<int> Folded { get; } = [];

    /// <summary>The file's initializers.</summary>
    /// <exception cref="InvalidDataException">One cannot be read; the message names it.</exception>
    public static OnnxConstants Read(OnnxGraph graph)
    {
        var constants = new OnnxConstants();
        try
        {
            foreach (var t in graph.Model.Graph.Initializer)
            {
                // Owned here (disposed with the constants), whatever dispose scope the import runs in.
                var value = OnnxAttributes.ToTensor(t, $"'{graph.Path}'").DetachFromDisposeScope();
                constants._values[t.Name] = value;
                if (value.is_floating_point() && !value.isfinite().all().item<bool>())
                {
                    throw new InvalidDataException($"'{graph.Path}': tensor '{t.Name}' holds NaN or infinite values; the weights are damaged (export them again from a network that computes finite outputs).");
                }

                if (value.is_floating_point() && value.numel() > 1)
                {
                    constants._weights.Add(t.Name);
                }
            }

            return constants;
        }
        catch
        {
            constants.Dispose();
            throw;
        }
    }

    /// <summary>Reads the Constant nodes, then evaluates every node computed from constants alone, in order.</summary>
    /// <exception cref="InvalidDataException">A constant cannot be read or a node fails on its constants; the message names it.</exception>
    public void Fold(OnnxGraph graph, OnnxBuild state)
    {
        for (var i = 0; i < graph.Nodes.Count; i++)
        {
            var (node, name) = graph.Nodes[i];
            if (node.OpType == "Constant")
            {
                _values[node.Output[0]] = ConstantValue(node, name, $"'{graph.Path}'").DetachFromDisposeScope();
                Folded.Add(i);
            }
            else if (OnnxOperators.IsFoldable(node.OpType) && node.Input.Count > 0 && node.Input.All(v => v.Length == 0 || _values.ContainsKey(v)))
            {
                Evaluate(state, i, node, name);
            }
        }
    }

    private void Evaluate(OnnxBuild state, int index, NodeProto node, string name)
    {
        var context = new OnnxNodeContext(state, node, name, folding: true);
        var step = OnnxOperators.Build(context);
        // The node's temporaries go with the scope; its outputs become constants of their own (an output may be a view of
        // its input, as Identity's and Reshape's are).
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            Tensor[] outputs;
            try
            {
                outputs = step.Run([.. node.Input.Select(v => v.Length == 0 ? null : _values[v])], StepMode.Inference);
            }
            catch (Exception ex) when (ex is System.Runtime.InteropServices.ExternalException or ArgumentException or InvalidOperationException or IndexOutOfRangeException)
            {
                throw new InvalidDataException($"{context.Where} fails on its constant inputs: {ex.Message.Split('\n')[0]}", ex);
            }

            for (var o = 0; o < node.Output.Count && o < outputs.Length; o++)
            {
                if (node.Output[o].Length == 0)
                {
                    continue;
                }

                _values[node.Output[o]] = outputs[o].detach().clone().DetachFromDisposeScope();
                if (Layout.Contains(node.OpType) && _weights.Contains(node.Input[0]) && _values[node.Output[o]].is_floating_point())
                {
                    _weights.Add(node.Output[o]);
                }
            }
        }

        Folded.Add(index);
    }

    /// <summary>A Constant node's value: its tensor, or one of the scalar and list forms of opset 12.</summary>
    private static Tensor ConstantValue(NodeProto node, string name, string where)
    {
        var a = new OnnxAttributes(node);
        where = $"{where}: Constant node '{name}'";
        return a.Tensor("value") is { } t ? OnnxAttributes.ToTensor(t, where)
            : a.Has("value_float") ? tensor(a.Float("value_float", 0))
            : a.Floats("value_floats") is { } fs ? tensor(fs, [fs.LongLength])
            : a.Has("value_int") ? tensor(a.Int("value_int", 0))
            : a.Ints("value_ints") is { } ls ? tensor(ls, [ls.LongLength])
            : throw new InvalidDataException($"{where} holds no numeric value (value, value_float(s) or value_int(s)).");
    }

    public void Dispose()
    {
        foreach (var t in _values.Values)
        {
            t.Dispose();
        }

        _values.Clear();
    }
}
