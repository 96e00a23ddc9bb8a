using System.Runtime.InteropServices;
using DTSKD.Core.Models;
using static TorchSharp.torch;

namespace DTSKD.Core.Onnx.Import;

/// <summary>
/// An ONNX network as a trainable TorchSharp module: its convolutions, batch norms and dense layers are TorchSharp modules
/// (parameters that train, running statistics that follow <c>train()</c>/<c>eval()</c>), its other nodes run as TorchSharp
/// operations in the file's order. It yields the tensors at its branch points and its feature, for
/// <see cref="MultiBranchNetwork"/>. Built by <see cref="OnnxImport"/>.
/// </summary>
public sealed class OnnxBackbone : nn.Module<Tensor, BackboneFeatures>, IBackboneGraph
{
    private readonly IReadOnlyList<OnnxStep> _steps;
    private readonly IReadOnlyDictionary<string, string> _constants;

    internal OnnxBackbone(string input, IReadOnlyList<OnnxStep> steps, IReadOnlyList<(string Name, nn.Module Module)> modules,
        IReadOnlyList<(string Value, string Buffer, Tensor Tensor)> constants, IReadOnlyList<string> branchPoints, string featurePoint)
        : base(nameof(OnnxBackbone))
    {
        (InputName, _steps, BranchPoints, FeaturePoint) = (input, steps, branchPoints, featurePoint);
        foreach (var (name, module) in modules)
        {
            register_module(name, module);
        }

        foreach (var (_, buffer, tensor) in constants)
        {
            register_buffer(buffer, tensor);
        }

        _constants = constants.ToDictionary(c => c.Value, c => c.Buffer, StringComparer.Ordinal);
    }

    /// <summary>The graph's image input.</summary>
    public string InputName { get; }

    /// <summary>The tensors the branches attach to, shallowest first.</summary>
    public IReadOnlyList<string> BranchPoints { get; }

    /// <summary>The tensor the classifier reads.</summary>
    public string FeaturePoint { get; }

    /// <summary>How many nodes of the file run (those the branch points and the feature need).</summary>
    public int NodeCount => _steps.Count;

    /// <summary>Runs the nodes the branch points and the feature need.</summary>
    /// <param name="input">Images, [batch, channels, height, width], normalised as the network expects.</param>
    public override BackboneFeatures forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var values = Run(input);
        var stages = BranchPoints.Select(p => values[p].MoveToOuterDisposeScope()).ToList();
        return new BackboneFeatures(stages, values[FeaturePoint].MoveToOuterDisposeScope());
    }

    /// <summary>The forward pass as a graph, for export (<see cref="OnnxExport"/>): the nodes whose forms the exporter writes.</summary>
    /// <exception cref="NotSupportedException">A node has no exported form (named).</exception>
    (IReadOnlyList<GraphValue> Stages, GraphValue Feature) IBackboneGraph.Describe(LayerGraph graph, GraphValue input)
    {
        var values = new Dictionary<string, GraphValue>(StringComparer.Ordinal) { [InputName] = input };
        foreach (var step in _steps)
        {
            values[step.Output] = step.Describe is { } describe && step.Inputs.All(values.ContainsKey)
                ? describe(graph, [.. step.Inputs.Select(i => values[i])])
                : throw new NotSupportedException(
                    $"Cannot export the imported node '{step.Name}' ({step.OpType}): the exporter writes Conv (explicit pads), BatchNormalization, Relu, Add, " +
                    "MaxPool, AveragePool (zero or counted pads), GlobalAveragePool, Flatten, Gemm, MatMul by a constant, Concat, Identity and Dropout.");
        }

        return ([.. BranchPoints.Select(p => values[p])], values[FeaturePoint]);
    }

    /// <summary>Every value the run computed, by ONNX name (in the caller's dispose scope).</summary>
    internal Dictionary<string, Tensor> Run(Tensor input, bool probing = false)
    {
        var values = new Dictionary<string, Tensor>(StringComparer.Ordinal) { [InputName] = input };
        foreach (var (value, buffer) in _constants)
        {
            values[value] = get_buffer(buffer)!;
        }

        foreach (var step in _steps)
        {
            var inputs = step.Inputs.Select(i => i.Length == 0 ? null : values[i]).ToArray();
            try
            {
                values[step.Output] = step.Run(inputs, training, probing);
            }
            catch (Exception ex) when (ex is ExternalException or ArgumentException or InvalidOperationException)
            {
                throw new InvalidDataException($"ONNX node '{step.Name}' ({step.OpType}) fails on input {string.Join(" and ", inputs.Where(i => i is not null).Select(i => "[" + string.Join(", ", i!.shape) + "]"))}: {ex.Message.Split('\n')[0]}", ex);
            }
        }

        return values;
    }
}

/// <summary>
/// One node of the graph: its inputs by name ("" for an omitted optional input), its first output, and what it computes
/// from the inputs, whether the module trains and whether this is the import's probe pass.
/// </summary>
internal sealed record OnnxStep(string Name, string OpType, string[] Inputs, string Output, Func<Tensor?[], bool, bool, Tensor> Run)
{
    /// <summary>The node for export, on the graph's values of its inputs; null where the exporter has no form for it.</summary>
    public Func<LayerGraph, GraphValue[], GraphValue>? Describe { get; init; }
}
