using DTSKD.Core.Models;
using Google.Protobuf;
using Onnx;
using TorchSharp.Modules;
using DTSKD.Core.Deployment;
using static TorchSharp.torch;
using DataType = Onnx.TensorProto.Types.DataType;

namespace DTSKD.Core.Onnx;

/// <summary>
/// A <see cref="LayerGraph"/> that records ONNX nodes and initializers as the ONNX schema's own messages (the
/// <c>NodeProto</c> and <c>TensorProto</c> that import reads), then builds the <c>GraphProto</c>.
/// </summary>
internal sealed class OnnxGraphWriter : LayerGraph
{
    private readonly List<NodeProto> _nodes = [];
    private readonly Dictionary<string, TensorProto> _initializers = new(StringComparer.Ordinal);
    private int _next;

    /// <summary>The graph's input value, named <see cref="OnnxContract.InputName"/>.</summary>
    public GraphValue Input(long channels) => new(_next++, channels);

    public static string NameOf(GraphValue value) => value.Id == 0 ? OnnxContract.InputName : $"v{value.Id}";

    public override GraphValue Relu(GraphValue x) => Op("Relu", [x], x.Channels);

    public override GraphValue Add(GraphValue a, GraphValue b) => Op("Add", [a, b], a.Channels);

    public override GraphValue ConcatChannels(IReadOnlyList<GraphValue> values) =>
        Op("Concat", values, values.Sum(v => v.Channels), [OnnxAttribute.Int("axis", 1)]);

    public override IReadOnlyList<GraphValue> SplitChannels(GraphValue x, int parts)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(parts, 1);
        if (x.Channels % parts != 0)
        {
            throw new NotSupportedException($"Cannot export '{Path}': {x.Channels} channels do not split into {parts} equal parts.");
        }

        var sizes = Constant($"{Path}.split", [parts], [.. Enumerable.Repeat(x.Channels / parts, parts)]);
        return Node("Split", [NameOf(x), sizes], [.. Enumerable.Repeat(x.Channels / parts, parts)], [OnnxAttribute.Int("axis", 1)]);
    }

    public override GraphValue ChannelShuffle(GraphValue x, int groups)
    {
        if (groups < 1 || x.Channels % groups != 0)
        {
            throw new NotSupportedException($"Cannot export '{Path}': {x.Channels} channels do not shuffle in {groups} groups.");
        }

        // [N, C, H, W] -> [N, g, C/g, H*W] -> swap the two channel axes -> back to x's own shape.
        var grouped = Op("Reshape", [x], x.Channels, inputs: [Constant($"{Path}.shuffle_shape", [4], [0, groups, x.Channels / groups, -1])]);
        var swapped = Op("Transpose", [grouped], x.Channels, [OnnxAttribute.Ints("perm", [0, 2, 1, 3])]);
        var shape = Op("Shape", [x], 4);
        return Op("Reshape", [swapped, shape], x.Channels);
    }

    public override GraphValue MaxPool(GraphValue x, (long H, long W) kernel, (long H, long W) stride, (long H, long W) padding, bool ceilMode) =>
        Op("MaxPool", [x], x.Channels,
        [
            OnnxAttribute.Ints("kernel_shape", [kernel.H, kernel.W]), OnnxAttribute.Ints("strides", [stride.H, stride.W]),
            OnnxAttribute.Ints("pads", [padding.H, padding.W, padding.H, padding.W]), OnnxAttribute.Int("ceil_mode", ceilMode ? 1 : 0),
        ]);

    public override GraphValue AveragePool(GraphValue x, (long H, long W) kernel, (long H, long W) stride, (long H, long W) padding, bool ceilMode) =>
        Op("AveragePool", [x], x.Channels,
        [
            OnnxAttribute.Ints("kernel_shape", [kernel.H, kernel.W]), OnnxAttribute.Ints("strides", [stride.H, stride.W]),
            OnnxAttribute.Ints("pads", [padding.H, padding.W, padding.H, padding.W]), OnnxAttribute.Int("ceil_mode", ceilMode ? 1 : 0),
            OnnxAttribute.Int("count_include_pad", 1),
        ]);

    public override GraphValue GlobalAveragePool(GraphValue x) => Op("GlobalAveragePool", [x], x.Channels);

    public override GraphValue Pad(GraphValue x, (long Top, long Left, long Bottom, long Right) pads, float value) =>
        Op("Pad", [x], x.Channels, inputs:
        [
            Constant($"{Path}.pads", [8], [0, 0, pads.Top, pads.Left, 0, 0, pads.Bottom, pads.Right]),
            Constant($"{Path}.pad_value", [], [value]),
        ]);

    public override GraphValue Flatten(GraphValue x) => Op("Flatten", [x], x.Channels, [OnnxAttribute.Int("axis", 1)]);

    public override GraphValue AsMap(GraphValue feature) =>
        Op("Reshape", [feature], feature.Channels, inputs: [Constant($"{Path}.map_shape{_next}", [4], [0, feature.Channels, 1, 1])]);

    /// <summary>
    /// Adds one node of any operator (an imported network's nodes, written as they compute): its inputs by name (graph
    /// values through <see cref="NameOf"/>, initializers through <see cref="Weight"/> and <see cref="Constant(string, Tensor)"/>,
    /// "" for an omitted optional input), one output per entry of <paramref name="channels"/>.
    /// </summary>
    public IReadOnlyList<GraphValue> Node(string opType, IReadOnlyList<string> inputs, IReadOnlyList<long> channels, IEnumerable<AttributeProto> attributes)
    {
        var outputs = channels.Select(c => new GraphValue(_next++, c)).ToList();
        var node = new NodeProto { OpType = opType, Name = $"{opType}_{NameOf(outputs[0])}" };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs.Select(NameOf));
        node.Attribute.AddRange(attributes);
        _nodes.Add(node);
        return outputs;
    }

    /// <summary>A tensor as an initializer, under a unique name built from <paramref name="name"/> (float32 for floating tensors, int64 for integers).</summary>
    public string Constant(string name, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var t = tensor.detach().cpu().contiguous();
        return t.is_floating_point()
            ? Constant(name, t.shape, t.to(ScalarType.Float32).data<float>().ToArray())
            : Constant(name, t.shape, t.to(ScalarType.Int64).data<long>().ToArray());
    }

    /// <summary>A parameter or buffer as a float32 initializer named after it.</summary>
    public string Weight(string name, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var values = tensor.detach().to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
        return Constant(name, tensor.shape, values);
    }

    protected override GraphValue Convolution(Conv2d conv, GraphValue x)
    {
        var padding = PaddingOf(conv);
        var (kh, kw) = Pair(conv.kernel_size);
        var (sh, sw) = Pair(conv.stride);
        var (dh, dw) = Pair(conv.dilation);
        List<string> inputs = [Weight($"{Path}.weight", conv.weight)];
        if (conv.bias is { } bias)
        {
            inputs.Add(Weight($"{Path}.bias", bias));
        }

        return Op("Conv", [x], conv.out_channels,
        [
            OnnxAttribute.Ints("kernel_shape", [kh, kw]), OnnxAttribute.Ints("strides", [sh, sw]), OnnxAttribute.Ints("dilations", [dh, dw]),
            OnnxAttribute.Ints("pads", [padding.H, padding.W, padding.H, padding.W]), OnnxAttribute.Int("group", conv.groups),
        ], inputs);
    }

    protected override GraphValue Normalization(BatchNorm2d norm, GraphValue x)
    {
        if (norm.running_mean is null || norm.running_var is null)
        {
            throw Unsupported(norm, "it keeps no running statistics, so it has no inference form");
        }

        var channels = norm.running_mean.shape[0];
        var scale = norm.weight is { } w ? Weight($"{Path}.weight", w) : Constant($"{Path}.weight", [channels], Enumerable.Repeat(1f, (int)channels).ToArray());
        var shift = norm.bias is { } b ? Weight($"{Path}.bias", b) : Constant($"{Path}.bias", [channels], new float[channels]);
        return Op("BatchNormalization", [x], x.Channels, [OnnxAttribute.Float("epsilon", (float)norm.eps)],
            [scale, shift, Weight($"{Path}.running_mean", norm.running_mean), Weight($"{Path}.running_var", norm.running_var)]);
    }

    protected override GraphValue Dense(Linear linear, GraphValue x)
    {
        List<string> inputs = [Weight($"{Path}.weight", linear.weight)];
        if (linear.bias is { } bias)
        {
            inputs.Add(Weight($"{Path}.bias", bias));
        }

        return Op("Gemm", [x], linear.out_features, [OnnxAttribute.Int("transB", 1)], inputs);
    }

    /// <summary>Names a value as a graph output (an Identity node, so any value, the input included, can be one).</summary>
    public void Output(GraphValue value, string name) => _nodes.Add(new NodeProto { OpType = "Identity", Name = $"Identity_{name}", Input = { NameOf(value) }, Output = { name } });

    /// <summary>Folds every BatchNormalization whose input is a convolution's output read by nothing else into that convolution.</summary>
    public int FoldBatchNorms()
    {
        var folded = 0;
        foreach (var norm in _nodes.Where(n => n.OpType == "BatchNormalization").ToList())
        {
            var conv = _nodes.FirstOrDefault(n => n.OpType == "Conv" && n.Output[0] == norm.Input[0]);
            if (conv is null || _nodes.Count(n => n.Input.Contains(norm.Input[0])) != 1 || !norm.Input.Skip(1).All(IsFloatInitializer)
                || !conv.Input.Skip(1).All(IsFloatInitializer))
            {
                continue;
            }

            var epsilon = norm.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;
            var (gamma, beta, mean, variance) = (Floats(norm.Input[1]), Floats(norm.Input[2]), Floats(norm.Input[3]), Floats(norm.Input[4]));
            var weightProto = _initializers[conv.Input[1]];
            var weight = Floats(conv.Input[1]);
            var outChannels = (int)weightProto.Dims[0];
            var perChannel = weight.Length / outChannels;
            var bias = conv.Input.Count > 2 && conv.Input[2].Length > 0 ? Floats(conv.Input[2]) : new float[outChannels];
            var newWeight = new float[weight.Length];
            var newBias = new float[outChannels];
            for (var o = 0; o < outChannels; o++)
            {
                // w' = w · γ / √(σ² + ε), b' = (b − μ) · γ / √(σ² + ε) + β, in double before rounding to float32.
                var factor = gamma[o] / Math.Sqrt(variance[o] + (double)epsilon);
                for (var i = 0; i < perChannel; i++)
                {
                    newWeight[o * perChannel + i] = (float)(weight[o * perChannel + i] * factor);
                }

                newBias[o] = (float)((bias[o] - mean[o]) * factor + beta[o]);
            }

            var weightName = Constant(conv.Input[1] + "_folded", [.. weightProto.Dims], newWeight);
            var biasName = Constant(conv.Input[1] + "_folded_bias", [outChannels], newBias);
            var fused = conv.Clone();
            fused.Input.Clear();
            fused.Input.AddRange([conv.Input[0], weightName, biasName]);
            fused.Output[0] = norm.Output[0];
            _nodes[_nodes.IndexOf(conv)] = fused;
            _nodes.Remove(norm);
            folded++;
        }

        // Initializers nothing reads any more (the unfolded weights and the norms' statistics) are left out.
        var used = _nodes.SelectMany(n => n.Input).ToHashSet(StringComparer.Ordinal);
        foreach (var name in _initializers.Keys.Where(k => !used.Contains(k)).ToList())
        {
            _initializers.Remove(name);
        }

        return folded;
    }

    /// <summary>The GraphProto: nodes, initializers, the input and the outputs.</summary>
    public GraphProto Graph(string name, (long Channels, long Height, long Width) input, IReadOnlyList<(string Name, long Classes)> outputs)
    {
        var graph = new GraphProto { Name = name };
        graph.Node.AddRange(_nodes);
        graph.Initializer.AddRange(_initializers.Values);
        graph.Input.Add(ValueInfo(OnnxContract.InputName, [null, input.Channels, input.Height, input.Width]));
        graph.Output.AddRange(outputs.Select(o => ValueInfo(o.Name, [null, o.Classes])));
        return graph;
    }

    /// <summary>The number of float32 weights the graph holds (for the export's summary).</summary>
    public long WeightCount => _initializers.Values.Where(i => i.DataType == (int)DataType.Float).Sum(i => i.Dims.Aggregate(1L, (a, b) => a * b));

    private static ValueInfoProto ValueInfo(string name, long?[] dims)
    {
        var shape = new TensorShapeProto();
        shape.Dim.AddRange(dims.Select(d => d is { } size
            ? new TensorShapeProto.Types.Dimension { DimValue = size }
            : new TensorShapeProto.Types.Dimension { DimParam = OnnxContract.BatchDimension }));
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)DataType.Float, Shape = shape } },
        };
    }

    private GraphValue Op(string opType, IReadOnlyList<GraphValue> values, long channels, IReadOnlyList<AttributeProto>? attributes = null, IReadOnlyList<string>? inputs = null) =>
        Node(opType, [.. values.Select(NameOf), .. inputs ?? []], [channels], attributes ?? [])[0];

    private string Constant(string name, long[] dims, float[] values) =>
        Add(Tensor(name, dims, DataType.Float, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())));

    private string Constant(string name, long[] dims, long[] values) =>
        Add(Tensor(name, dims, DataType.Int64, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())));

    private TensorProto Tensor(string name, long[] dims, DataType type, ReadOnlySpan<byte> bytes)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("ONNX raw tensor data is little-endian; this machine is not.");
        }

        var proto = new TensorProto { Name = Unique(name), DataType = (int)type, RawData = ByteString.CopyFrom(bytes) };
        proto.Dims.AddRange(dims);
        return proto;
    }

    private string Add(TensorProto initializer)
    {
        _initializers.Add(initializer.Name, initializer);
        return initializer.Name;
    }

    private string Unique(string name)
    {
        var candidate = name;
        for (var i = 1; _initializers.ContainsKey(candidate); i++)
        {
            candidate = $"{name}_{i}";
        }

        return candidate;
    }

    private bool IsFloatInitializer(string name) => _initializers.TryGetValue(name, out var t) && t.DataType == (int)DataType.Float;

    private float[] Floats(string name) => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(_initializers[name].RawData.Span).ToArray();
}
