using System.Runtime.InteropServices;
using DTSKD.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core.Onnx.Import;

/// <summary>
/// An ONNX network as a trainable TorchSharp module: its convolutions, batch and layer norms and dense layers are
/// TorchSharp modules, the weights its other nodes apply (a layer scale, a bias added after a MatMul) are parameters, and
/// every node runs as TorchSharp operations in the graph's order (shapes computed from the image at run time, so any
/// batch). It yields the tensors at its branch points and its feature, for <see cref="MultiBranchNetwork"/>. Built by
/// <see cref="OnnxImport"/>.
/// </summary>
public sealed class OnnxBackbone : nn.Module<Tensor, BackboneFeatures>, IBackboneGraph
{
    private readonly IReadOnlyList<OnnxStep> _steps;

    // Constants the nodes read at run time: floats as buffers (they follow the module's device), integers (shapes, axes,
    // indices) on the host, trained weights as parameters.
    private readonly Dictionary<string, string> _buffers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Tensor> _host = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _weights = new(StringComparer.Ordinal);

    internal OnnxBackbone(string input, IReadOnlyList<OnnxStep> steps, OnnxBuild build, string featurePoint)
        : base(nameof(OnnxBackbone))
    {
        (InputName, _steps, FeaturePoint) = (input, steps, featurePoint);
        foreach (var (name, module) in build.Modules)
        {
            register_module(name, module);
        }

        foreach (var (key, name, value) in build.Parameters)
        {
            register_parameter(name, value);
            _weights[key] = name;
        }

        var produced = new HashSet<string>(StringComparer.Ordinal) { input };
        foreach (var step in steps)
        {
            foreach (var value in step.Inputs.Where(v => v.Length > 0 && !produced.Contains(v) && !_weights.ContainsKey(v) && !_buffers.ContainsKey(v) && !_host.ContainsKey(v)))
            {
                var constant = build.Constants.Get(value)
                    ?? throw new InvalidDataException($"ONNX node '{step.Name}' ({step.OpType}) reads '{value}', which no node before it computes.");
                if (constant.is_floating_point())
                {
                    var buffer = $"constant{_buffers.Count}_{OnnxBuild.Sanitise(value)}";
                    // Owned by the module, whatever dispose scope the import ran in.
                    register_buffer(buffer, constant.clone().DetachFromDisposeScope());
                    _buffers[value] = buffer;
                }
                else
                {
                    _host[value] = constant.clone().DetachFromDisposeScope();
                }
            }

            produced.UnionWith(step.Outputs.Where(o => o.Length > 0));
        }
    }

    /// <summary>The graph's image input.</summary>
    public string InputName { get; }

    /// <summary>The tensors the branches attach to, shallowest first.</summary>
    public IReadOnlyList<string> BranchPoints { get; internal set; } = [];

    /// <summary>The tensor the classifier reads.</summary>
    public string FeaturePoint { get; }

    /// <summary>Whether the feature is a map that the backbone averages over height and width (a classifier of convolutions was left out).</summary>
    public bool PoolsFeature { get; internal set; }

    /// <summary>How many nodes of the file run (those the branch points and the feature need, constants evaluated at import left out).</summary>
    public int NodeCount => _steps.Count;

    internal IReadOnlyList<long> StageChannels { get; set; } = [];

    internal long FeatureChannels { get; set; }

    /// <summary>Runs the nodes the branch points and the feature need.</summary>
    /// <param name="input">Images, [batch, channels, height, width], normalised as the network expects.</param>
    public override BackboneFeatures forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var values = Run(input, new StepMode(training, Probing: false));
        var stages = BranchPoints.Select(p => values[p].MoveToOuterDisposeScope()).ToList();
        var feature = values[FeaturePoint];
        return new BackboneFeatures(stages, (PoolsFeature ? feature.mean([2, 3], keepdim: true) : feature).MoveToOuterDisposeScope());
    }

    /// <summary>The forward pass as a graph, for export (<see cref="OnnxExport"/>): every node written again in opset 17, with the trained weights.</summary>
    /// <exception cref="NotSupportedException">The graph is not DTSKD.Core.Onnx's writer, or a node cannot be written (named).</exception>
    (IReadOnlyList<GraphValue> Stages, GraphValue Feature) IBackboneGraph.Describe(LayerGraph graph, GraphValue input)
    {
        if (graph is not OnnxGraphWriter onnx)
        {
            throw new NotSupportedException($"An imported ONNX network is written again as ONNX only ({graph.GetType().Name} cannot describe its nodes).");
        }

        var writer = new OnnxStepWriter(onnx, graph.Path, input);
        var names = new Dictionary<string, string>(StringComparer.Ordinal) { [InputName] = writer.InputName };
        string Name(string value)
        {
            if (names.TryGetValue(value, out var known))
            {
                return known;
            }

            var written = _weights.TryGetValue(value, out var p) ? writer.Tensor(p, get_parameter(p)!)
                : _buffers.TryGetValue(value, out var b) ? writer.Tensor(b, get_buffer(b)!)
                : writer.Tensor(OnnxBuild.Sanitise(value), _host[value]);
            names[value] = written;
            return written;
        }

        foreach (var step in _steps)
        {
            IReadOnlyList<string> outputs;
            try
            {
                outputs = step.Export(writer, [.. step.Inputs.Select(i => i.Length == 0 ? string.Empty : Name(i))]);
            }
            catch (InvalidOperationException ex)
            {
                throw new NotSupportedException($"Cannot export the imported node '{step.Name}' ({step.OpType}): {ex.Message}", ex);
            }

            for (var i = 0; i < outputs.Count && i < step.Outputs.Length; i++)
            {
                names[step.Outputs[i]] = outputs[i];
            }
        }

        var feature = writer.Value(names[FeaturePoint], FeatureChannels);
        return ([.. BranchPoints.Select((p, i) => writer.Value(names[p], StageChannels[i]))], PoolsFeature ? onnx.GlobalAveragePool(feature) : feature);
    }

    /// <summary>Every value the run computed, by ONNX name (in the caller's dispose scope).</summary>
    internal Dictionary<string, Tensor> Run(Tensor input, StepMode mode)
    {
        var values = new Dictionary<string, Tensor>(StringComparer.Ordinal) { [InputName] = input };
        foreach (var (value, buffer) in _buffers)
        {
            values[value] = get_buffer(buffer)!;
        }

        foreach (var (value, parameter) in _weights)
        {
            values[value] = get_parameter(parameter)!;
        }

        foreach (var (value, constant) in _host)
        {
            values[value] = constant;
        }

        foreach (var step in _steps)
        {
            var inputs = step.Inputs.Select(i => i.Length == 0 ? null : values.TryGetValue(i, out var v) ? v
                : throw new InvalidDataException($"ONNX node '{step.Name}' ({step.OpType}) reads '{i}', an output the importer does not compute.")).ToArray();
            Tensor[] outputs;
            try
            {
                outputs = step.Run(inputs, mode);
            }
            catch (Exception ex) when (ex is ExternalException or ArgumentException or InvalidOperationException or IndexOutOfRangeException)
            {
                throw new InvalidDataException($"ONNX node '{step.Name}' ({step.OpType}) fails on input {string.Join(" and ", inputs.Where(i => i is not null).Select(i => "[" + string.Join(", ", i!.shape) + "]"))}: {ex.Message.Split('\n')[0]}", ex);
            }

            for (var i = 0; i < outputs.Length && i < step.Outputs.Length; i++)
            {
                values[step.Outputs[i]] = outputs[i];
            }
        }

        return values;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var t in _host.Values)
            {
                t.Dispose();
            }

            _host.Clear();
        }

        base.Dispose(disposing);
    }
}
