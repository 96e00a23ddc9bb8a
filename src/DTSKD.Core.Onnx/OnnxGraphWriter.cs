using System.Runtime.InteropServices;
using DTSKD.Core.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Onnx;

/// <summary>A <see cref="LayerGraph"/> that records ONNX nodes and float32 initializers, then writes a GraphProto.</summary>
internal sealed class OnnxGraphWriter : LayerGraph
{
    private const int Float = 1;
    private const int Int64 = 7;
    private readonly List<Node> _nodes = [];
    private readonly Dictionary<string, Initializer> _initializers = new(StringComparer.Ordinal);
    private int _next;

    /// <summary>The graph's input value, named <see cref="OnnxContract.InputName"/>.</summary>
    public GraphValue Input(long channels) => new(_next++, channels);

    public string NameOf(GraphValue value) => value.Id == 0 ? OnnxContract.InputName : $"v{value.Id}";

    public override GraphValue Relu(GraphValue x) => Op("Relu", [x], x.Channels);

    public override GraphValue Add(GraphValue a, GraphValue b) => Op("Add", [a, b], a.Channels);

    public override GraphValue ConcatChannels(IReadOnlyList<GraphValue> values) =>
        Op("Concat", values, values.Sum(v => v.Channels), [Attribute.Int("axis", 1)]);

    public override IReadOnlyList<GraphValue> SplitChannels(GraphValue x, int parts)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(parts, 1);
        if (x.Channels % parts != 0)
        {
            throw new NotSupportedException($"Cannot export '{Path}': {x.Channels} channels do not split into {parts} equal parts.");
        }

        var sizes = Constant($"{Path}.split", [parts], [.. Enumerable.Repeat(x.Channels / parts, parts)]);
        var outputs = Enumerable.Range(0, parts).Select(_ => new GraphValue(_next++, x.Channels / parts)).ToArray();
        _nodes.Add(new Node("Split", [NameOf(x), sizes], [.. outputs.Select(NameOf)], [Attribute.Int("axis", 1)]));
        return outputs;
    }

    public override GraphValue ChannelShuffle(GraphValue x, int groups)
    {
        if (groups < 1 || x.Channels % groups != 0)
        {
            throw new NotSupportedException($"Cannot export '{Path}': {x.Channels} channels do not shuffle in {groups} groups.");
        }

        // [N, C, H, W] -> [N, g, C/g, H*W] -> swap the two channel axes -> back to x's own shape.
        var grouped = Op("Reshape", [x], x.Channels, inputs: [Constant($"{Path}.shuffle_shape", [4], [0, groups, x.Channels / groups, -1])]);
        var swapped = Op("Transpose", [grouped], x.Channels, [Attribute.Ints("perm", [0, 2, 1, 3])]);
        var shape = Op("Shape", [x], 4);
        return Op("Reshape", [swapped, shape], x.Channels);
    }

    public override GraphValue MaxPool(GraphValue x, (long H, long W) kernel, (long H, long W) stride, (long H, long W) padding, bool ceilMode) =>
        Op("MaxPool", [x], x.Channels,
        [
            Attribute.Ints("kernel_shape", [kernel.H, kernel.W]), Attribute.Ints("strides", [stride.H, stride.W]),
            Attribute.Ints("pads", [padding.H, padding.W, padding.H, padding.W]), Attribute.Int("ceil_mode", ceilMode ? 1 : 0),
        ]);

    public override GraphValue AveragePool(GraphValue x, (long H, long W) kernel, (long H, long W) stride, (long H, long W) padding, bool ceilMode) =>
        Op("AveragePool", [x], x.Channels,
        [
            Attribute.Ints("kernel_shape", [kernel.H, kernel.W]), Attribute.Ints("strides", [stride.H, stride.W]),
            Attribute.Ints("pads", [padding.H, padding.W, padding.H, padding.W]), Attribute.Int("ceil_mode", ceilMode ? 1 : 0),
            Attribute.Int("count_include_pad", 1),
        ]);

    public override GraphValue GlobalAveragePool(GraphValue x) => Op("GlobalAveragePool", [x], x.Channels);

    public override GraphValue Pad(GraphValue x, (long Top, long Left, long Bottom, long Right) pads, float value) =>
        Op("Pad", [x], x.Channels, inputs:
        [
            Constant($"{Path}.pads", [8], [0, 0, pads.Top, pads.Left, 0, 0, pads.Bottom, pads.Right]),
            Constant($"{Path}.pad_value", [], [value]),
        ]);

    public override GraphValue Flatten(GraphValue x) => Op("Flatten", [x], x.Channels, [Attribute.Int("axis", 1)]);

    public override GraphValue AsMap(GraphValue feature) =>
        Op("Reshape", [feature], feature.Channels, inputs: [Constant($"{Path}.map_shape{_next}", [4], [0, feature.Channels, 1, 1])]);

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
            Attribute.Ints("kernel_shape", [kh, kw]), Attribute.Ints("strides", [sh, sw]), Attribute.Ints("dilations", [dh, dw]),
            Attribute.Ints("pads", [padding.H, padding.W, padding.H, padding.W]), Attribute.Int("group", conv.groups),
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
        return Op("BatchNormalization", [x], x.Channels, [Attribute.Float("epsilon", (float)norm.eps)],
            [scale, shift, Weight($"{Path}.running_mean", norm.running_mean), Weight($"{Path}.running_var", norm.running_var)]);
    }

    protected override GraphValue Dense(Linear linear, GraphValue x)
    {
        List<string> inputs = [Weight($"{Path}.weight", linear.weight)];
        if (linear.bias is { } bias)
        {
            inputs.Add(Weight($"{Path}.bias", bias));
        }

        return Op("Gemm", [x], linear.out_features, [Attribute.Int("transB", 1)], inputs);
    }

    /// <summary>Names a value as a graph output (an Identity node, so any value, the input included, can be one).</summary>
    public void Output(GraphValue value, string name) => _nodes.Add(new Node("Identity", [NameOf(value)], [name], []));

    /// <summary>Folds every BatchNormalization whose input is a convolution's output read by nothing else into that convolution.</summary>
    public int FoldBatchNorms()
    {
        var folded = 0;
        foreach (var norm in _nodes.Where(n => n.OpType == "BatchNormalization").ToList())
        {
            var conv = _nodes.FirstOrDefault(n => n.OpType == "Conv" && n.Outputs[0] == norm.Inputs[0]);
            if (conv is null || _nodes.Count(n => n.Inputs.Contains(norm.Inputs[0])) != 1)
            {
                continue;
            }

            var epsilon = norm.Attributes.Single(a => a.Name == "epsilon").FloatValue;
            var (gamma, beta, mean, variance) = (Floats(norm.Inputs[1]), Floats(norm.Inputs[2]), Floats(norm.Inputs[3]), Floats(norm.Inputs[4]));
            var weight = _initializers[conv.Inputs[1]];
            var outChannels = (int)weight.Dims[0];
            var perChannel = weight.Floats!.Length / outChannels;
            var bias = conv.Inputs.Count > 2 ? Floats(conv.Inputs[2]) : new float[outChannels];
            var newWeight = new float[weight.Floats.Length];
            var newBias = new float[outChannels];
            for (var o = 0; o < outChannels; o++)
            {
                // w' = w · γ / √(σ² + ε), b' = (b − μ) · γ / √(σ² + ε) + β, in double before rounding to float32.
                var factor = gamma[o] / Math.Sqrt(variance[o] + (double)epsilon);
                for (var i = 0; i < perChannel; i++)
                {
                    newWeight[o * perChannel + i] = (float)(weight.Floats[o * perChannel + i] * factor);
                }

                newBias[o] = (float)((bias[o] - mean[o]) * factor + beta[o]);
            }

            var weightName = Constant(conv.Inputs[1] + "_folded", weight.Dims, newWeight);
            var biasName = Constant(conv.Inputs[1] + "_folded_bias", [outChannels], newBias);
            var index = _nodes.IndexOf(conv);
            _nodes[index] = conv with { Inputs = [conv.Inputs[0], weightName, biasName], Outputs = [norm.Outputs[0]] };
            _nodes.Remove(norm);
            folded++;
        }

        // Initializers nothing reads any more (the unfolded weights and the norms' statistics) are left out.
        var used = _nodes.SelectMany(n => n.Inputs).ToHashSet(StringComparer.Ordinal);
        foreach (var name in _initializers.Keys.Where(k => !used.Contains(k)).ToList())
        {
            _initializers.Remove(name);
        }

        return folded;
    }

    /// <summary>Writes the GraphProto: nodes, initializers, the input and the outputs.</summary>
    public void WriteGraph(ProtoWriter graph, string name, (long Channels, long Height, long Width) input, IReadOnlyList<(string Name, long Classes)> outputs)
    {
        foreach (var node in _nodes)
        {
            graph.Message(1, n =>
            {
                foreach (var i in node.Inputs)
                {
                    n.String(1, i);
                }

                foreach (var o in node.Outputs)
                {
                    n.String(2, o);
                }

                n.String(3, $"{node.OpType}_{node.Outputs[0]}");
                n.String(4, node.OpType);
                foreach (var a in node.Attributes)
                {
                    n.Message(5, a.Write);
                }
            });
        }

        graph.String(2, name);
        foreach (var init in _initializers.Values)
        {
            graph.Message(5, t => init.Write(t));
        }

        graph.Message(11, v => ValueInfo(v, OnnxContract.InputName, [null, input.Channels, input.Height, input.Width]));
        foreach (var (outputName, classes) in outputs)
        {
            graph.Message(12, v => ValueInfo(v, outputName, [null, classes]));
        }
    }

    /// <summary>The number of float32 weights the graph holds (for the export's summary).</summary>
    public long WeightCount => _initializers.Values.Where(i => i.Floats is not null).Sum(i => (long)i.Floats!.Length);

    private static void ValueInfo(ProtoWriter v, string name, long?[] dims)
    {
        v.String(1, name);
        v.Message(2, type => type.Message(1, tensor =>
        {
            tensor.Varint(1, Float);
            tensor.Message(2, shape =>
            {
                foreach (var d in dims)
                {
                    shape.Message(1, dim =>
                    {
                        if (d is { } size)
                        {
                            dim.Varint(1, size);
                        }
                        else
                        {
                            dim.String(2, OnnxContract.BatchDimension);
                        }
                    });
                }
            });
        }));
    }

    private GraphValue Op(string opType, IReadOnlyList<GraphValue> values, long channels, IReadOnlyList<Attribute>? attributes = null, IReadOnlyList<string>? inputs = null)
    {
        var output = new GraphValue(_next++, channels);
        _nodes.Add(new Node(opType, [.. values.Select(NameOf), .. inputs ?? []], [NameOf(output)], attributes ?? []));
        return output;
    }

    private string Weight(string name, Tensor tensor)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var values = tensor.detach().to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
        return Constant(name, tensor.shape, values);
    }

    private string Constant(string name, long[] dims, float[] values) => Add(new Initializer(Unique(name), dims, Float, values, null));

    private string Constant(string name, long[] dims, long[] values) => Add(new Initializer(Unique(name), dims, Int64, null, values));

    private string Add(Initializer initializer)
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

    private float[] Floats(string name) => _initializers[name].Floats ?? throw new InvalidOperationException($"'{name}' is not a float32 initializer.");

    private sealed record Node(string OpType, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs, IReadOnlyList<Attribute> Attributes);

    private sealed record Initializer(string Name, long[] Dims, int DataType, float[]? Floats, long[]? Longs)
    {
        public void Write(ProtoWriter t)
        {
            t.PackedVarints(1, Dims);
            t.Varint(2, DataType);
            t.String(8, Name);
            var bytes = Floats is not null ? MemoryMarshal.AsBytes(Floats.AsSpan()) : MemoryMarshal.AsBytes(Longs.AsSpan());
            if (!BitConverter.IsLittleEndian)
            {
                throw new PlatformNotSupportedException("ONNX raw tensor data is little-endian; this machine is not.");
            }

            t.Bytes(9, bytes);
        }
    }

    private sealed record Attribute(string Name, int Type, long IntValue, float FloatValue, long[]? IntsValue)
    {
        public static Attribute Int(string name, long value) => new(name, 2, value, 0, null);

        public static Attribute Float(string name, float value) => new(name, 1, 0, value, null);

        public static Attribute Ints(string name, long[] values) => new(name, 7, 0, 0, values);

        public void Write(ProtoWriter a)
        {
            a.String(1, Name);
            switch (Type)
            {
                case 1:
                    a.Float(2, FloatValue);
                    break;
                case 2:
                    a.Varint(3, IntValue);
                    break;
                default:
                    a.PackedVarints(8, IntsValue!);
                    break;
            }

            a.Varint(20, Type);
        }
    }
}
