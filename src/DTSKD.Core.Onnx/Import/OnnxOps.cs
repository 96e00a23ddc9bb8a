using DTSKD.Core.Models;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DTSKD.Core.Onnx.Import;

/// <summary>
/// The ONNX operators the importer knows, each as TorchSharp: convolutions, batch norms and dense layers become modules
/// (their weights parameters), the rest operations. Opsets 7 and newer: where an operator moved an attribute to an input
/// (Clip, Pad, Dropout, Reshape), both forms are read.
/// </summary>
internal sealed class OnnxOps(IReadOnlyDictionary<string, TensorProto> initializers, long declaredBatch)
{
    /// <summary>The operators the importer knows.</summary>
    public static readonly IReadOnlySet<string> Known = new HashSet<string>(StringComparer.Ordinal)
    {
        "Conv", "BatchNormalization", "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "Add", "Sub", "Mul", "Div",
        "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Gemm", "MatMul", "Flatten", "Reshape", "Concat", "Pad",
        "Identity", "Dropout", "Constant",
    };

    /// <summary>The modules made so far (name, module), registered by the backbone.</summary>
    public List<(string Name, nn.Module Module)> Modules { get; } = [];

    /// <summary>The module names each node made, by node name (for its stage's parameters).</summary>
    public Dictionary<string, string> ModuleOf { get; } = new(StringComparer.Ordinal);

    /// <summary>Notes on what was adapted (an average pool over the whole map made global, a fixed batch in a reshape).</summary>
    public List<string> Notes { get; } = [];

    /// <summary>The average pools found at the probe to cover the whole map (run and exported as global averages).</summary>
    private readonly HashSet<string> _globalPools = new(StringComparer.Ordinal);

    /// <summary>The step of one node, with its exported form where it has one; <paramref name="firstConv"/> adapts the input convolution's weights (gray input, BGR order).</summary>
    public OnnxStep Build(NodeProto node, string name, Func<Tensor, Tensor>? firstConv)
    {
        var step = Compute(node, name, firstConv);
        return step with { Describe = Exported(node, name, new OnnxAttributes(node)) };
    }

    private OnnxStep Compute(NodeProto node, string name, Func<Tensor, Tensor>? firstConv)
    {
        var a = new OnnxAttributes(node);
        string[] inputs = [.. node.Input];
        string In(int i) => i < inputs.Length ? inputs[i] : string.Empty;
        OnnxStep Step(Func<Tensor?[], bool, bool, Tensor> run, params string[] used) => new(name, node.OpType, used.Length == 0 ? [In(0)] : used, node.Output[0], run);
        return node.OpType switch
        {
            "Conv" => Conv(node, name, a, firstConv),
            "BatchNormalization" => Norm(node, name, a),
            "Gemm" => Gemm(node, name, a),
            "MatMul" when initializers.ContainsKey(In(1)) => MatMulConstant(node, name),
            "MatMul" => Step((x, _, _) => x[0]!.matmul(x[1]!), In(0), In(1)),
            "Relu" => Step((x, _, _) => F.relu(x[0]!)),
            "Sigmoid" => Step((x, _, _) => x[0]!.sigmoid()),
            "LeakyRelu" => Step((x, _, _) => F.leaky_relu(x[0]!, a.Float("alpha", 0.01f))),
            "HardSigmoid" => HardSigmoid(a, Step),
            "HardSwish" => Step((x, _, _) => F.hardswish(x[0]!)),
            "Clip" => Clip(a, inputs, Step),
            "Add" => Step((x, _, _) => x[0]!.add(x[1]!), In(0), In(1)),
            "Sub" => Step((x, _, _) => x[0]!.sub(x[1]!), In(0), In(1)),
            "Mul" => Step((x, _, _) => x[0]!.mul(x[1]!), In(0), In(1)),
            "Div" => Step((x, _, _) => x[0]!.div(x[1]!), In(0), In(1)),
            "MaxPool" => Pool(name, a, max: true, Step),
            "AveragePool" => Pool(name, a, max: false, Step),
            "GlobalAveragePool" => Step((x, _, _) => x[0]!.mean([2, 3], keepdim: true)),
            "GlobalMaxPool" => Step((x, _, _) => x[0]!.amax([2, 3], keepdim: true)),
            "Flatten" => Flatten(a, Step),
            "Reshape" => Reshape(name, a, inputs, Step),
            "Concat" => new(name, node.OpType, inputs, node.Output[0], (x, _, _) => cat([.. x.Select(t => t!)], a.Int("axis", 1))),
            "Pad" => Pad(name, a, inputs, Step),
            "Identity" => Step((x, _, _) => x[0]!.alias()),
            "Dropout" => Dropout(a, inputs, Step),
            _ => throw new InvalidDataException($"ONNX node '{name}' ({node.OpType}) is not supported; the importer knows {string.Join(", ", Known.Order(StringComparer.Ordinal))}."),
        };
    }

    /// <summary>The node as the exporter writes it: modules through <see cref="LayerGraph.Layer"/>, asymmetric pads as explicit Pad nodes.</summary>
    private Func<LayerGraph, GraphValue[], GraphValue>? Exported(NodeProto node, string name, OnnxAttributes a)
    {
        var module = ModuleOf.TryGetValue(name, out var registered) ? (Name: registered, Module: Modules.Single(m => m.Name == registered).Module) : default;
        long[]? FixedPads(long kh, long kw) => Pads(a, kh, kw, a.Ints("strides") ?? [1, 1], a.Ints("dilations") ?? [1, 1]).Fixed;
        static bool Symmetric(long[] p) => p[0] == p[2] && p[1] == p[3];
        GraphValue Padded(LayerGraph g, GraphValue x, long[] p, float value) => p.All(v => v == 0) ? x : g.Pad(x, (p[0], p[1], p[2], p[3]), value);
        var kernel = a.Ints("kernel_shape");
        var unitDilation = (a.Ints("dilations") ?? [1, 1]).All(d => d == 1);
        switch (node.OpType)
        {
            case "Conv" when module.Module is TorchSharp.Modules.Conv2d conv && FixedPads(conv.kernel_size[0], conv.kernel_size[1]) is { } p:
                return (g, x) => g.Layer(conv, Symmetric(p) ? x[0] : Padded(g, x[0], p, 0), module.Name);
            case "BatchNormalization" or "Gemm" or "MatMul" when module.Module is not null:
                return (g, x) => g.Layer(module.Module, x[0], module.Name);
            case "Relu":
                return (g, x) => g.Relu(x[0]);
            case "Add" when !node.Input.Any(initializers.ContainsKey):
                return (g, x) => g.Add(x[0], x[1]);
            case "MaxPool" when kernel is { Length: 2 } && unitDilation && FixedPads(kernel[0], kernel[1]) is { } p:
                return (g, x) => Symmetric(p)
                    ? g.MaxPool(x[0], (kernel[0], kernel[1]), Pair(a.Ints("strides")), (p[0], p[1]), a.Int("ceil_mode", 0) != 0)
                    : g.MaxPool(Padded(g, x[0], p, float.NegativeInfinity), (kernel[0], kernel[1]), Pair(a.Ints("strides")), (0, 0), a.Int("ceil_mode", 0) != 0);
            case "AveragePool" when kernel is { Length: 2 } && FixedPads(kernel[0], kernel[1]) is { } p && (p.All(v => v == 0) || (Symmetric(p) && a.Int("count_include_pad", 0) != 0)):
                return (g, x) => _globalPools.Contains(name)
                    ? g.GlobalAveragePool(x[0])
                    : g.AveragePool(x[0], (kernel[0], kernel[1]), Pair(a.Ints("strides")), (p[0], p[1]), a.Int("ceil_mode", 0) != 0);
            case "GlobalAveragePool":
                return (g, x) => g.GlobalAveragePool(x[0]);
            case "Flatten" when a.Int("axis", 1) == 1:
                return (g, x) => g.Flatten(x[0]);
            case "Concat" when a.Int("axis", 1) == 1:
                return (g, x) => g.ConcatChannels(x);
            case "Identity" or "Dropout":
                return (_, x) => x[0];
            default:
                return null;
        }

        static (long, long) Pair(long[]? strides) => strides is { Length: 2 } s ? (s[0], s[1]) : (1, 1);
    }

    private Tensor Constant(string value, string where) =>
        initializers.TryGetValue(value, out var proto) ? OnnxAttributes.ToTensor(proto, where)
        : throw new InvalidDataException($"{where}: input '{value}' must be a constant (an initializer) for the importer.");

    private string Register(string node, nn.Module module)
    {
        var name = Sanitise(node);
        while (Modules.Any(m => m.Name == name))
        {
            name += "_";
        }

        Modules.Add((name, module));
        ModuleOf[node] = name;
        return name;
    }

    internal static string Sanitise(string name) => new([.. name.Select(c => char.IsAsciiLetterOrDigit(c) || c == '_' ? c : '_')]);

    private OnnxStep Conv(NodeProto node, string name, OnnxAttributes a, Func<Tensor, Tensor>? adapt)
    {
        using var loaded = Constant(node.Input[1], $"ONNX node '{name}' (Conv)");
        if (loaded.dim() != 4)
        {
            throw new InvalidDataException($"ONNX node '{name}' (Conv) has a {loaded.dim() - 2}-D kernel; the importer takes 2-D convolutions.");
        }

        using var weight = adapt is null ? loaded.alias() : adapt(loaded);
        var groups = a.Int("group", 1);
        var (kh, kw) = (weight.shape[2], weight.shape[3]);
        var strides = a.Ints("strides") ?? [1, 1];
        var dilations = a.Ints("dilations") ?? [1, 1];
        var pads = Pads(a, kh, kw, strides, dilations);
        var symmetric = pads.Fixed is { } p && p[0] == p[2] && p[1] == p[3];
        var hasBias = node.Input.Count > 2 && node.Input[2].Length > 0;
        var conv = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], (kh, kw), stride: (strides[0], strides[1]),
            padding: symmetric ? (pads.Fixed![0], pads.Fixed[1]) : (0, 0), dilation: (dilations[0], dilations[1]), groups: groups, bias: hasBias);
        using (no_grad())
        {
            conv.weight!.copy_(weight);
            if (hasBias)
            {
                using var bias = Constant(node.Input[2], $"ONNX node '{name}' (Conv)");
                conv.bias!.copy_(bias);
            }
        }

        Register(name, conv);
        return new(name, node.OpType, [node.Input[0]], node.Output[0], (x, _, _) => conv.call(symmetric ? x[0]! : pads.Apply(x[0]!, 0)));
    }

    /// <summary>The explicit padding of a convolution or pool: fixed [top, left, bottom, right], or computed per input for auto_pad SAME.</summary>
    private static Padding Pads(OnnxAttributes a, long kh, long kw, long[] strides, long[] dilations)
    {
        var auto = a.String("auto_pad", "NOTSET");
        if (auto is "SAME_UPPER" or "SAME_LOWER")
        {
            return new Padding(null, (x) =>
            {
                long[] Side(long size, long k, long s, long d)
                {
                    var total = Math.Max(0, ((((size + s) - 1) / s) - 1) * s + ((k - 1) * d) + 1 - size);
                    var small = total / 2;
                    return auto == "SAME_UPPER" ? [small, total - small] : [total - small, small];
                }

                var (h, w) = (Side(x.shape[2], kh, strides[0], dilations[0]), Side(x.shape[3], kw, strides[1], dilations[1]));
                return [h[0], w[0], h[1], w[1]];
            });
        }

        return new Padding(auto == "VALID" ? [0, 0, 0, 0] : a.Ints("pads") ?? [0, 0, 0, 0], null);
    }

    private sealed record Padding(long[]? Fixed, Func<Tensor, long[]>? Computed)
    {
        public long[] For(Tensor x) => Fixed ?? Computed!(x);

        /// <summary>Pads H and W explicitly (ONNX order [top, left, bottom, right]; F.pad takes [left, right, top, bottom]).</summary>
        public Tensor Apply(Tensor x, double value)
        {
            var p = For(x);
            return p.All(v => v == 0) ? x.alias() : F.pad(x, [p[1], p[3], p[0], p[2]], PaddingModes.Constant, value);
        }
    }

    private OnnxStep Norm(NodeProto node, string name, OnnxAttributes a)
    {
        if (a.Int("spatial", 1) != 1)
        {
            throw new InvalidDataException($"ONNX node '{name}' (BatchNormalization) normalises per position (spatial=0); the importer takes per-channel batch norms.");
        }

        var where = $"ONNX node '{name}' (BatchNormalization)";
        using var scale = Constant(node.Input[1], where);
        using var shift = Constant(node.Input[2], where);
        using var mean = Constant(node.Input[3], where);
        using var variance = Constant(node.Input[4], where);

        // ONNX keeps momentum of the running average (0.9); PyTorch the weight of the new batch (0.1).
        var norm = nn.BatchNorm2d(scale.shape[0], eps: a.Float("epsilon", 1e-5f), momentum: 1 - a.Float("momentum", 0.9f));
        using (no_grad())
        {
            norm.weight!.copy_(scale);
            norm.bias!.copy_(shift);
            norm.running_mean!.copy_(mean);
            norm.running_var!.copy_(variance);
        }

        Register(name, norm);
        return new(name, node.OpType, [node.Input[0]], node.Output[0], (x, _, _) => norm.call(x[0]!));
    }

    private OnnxStep Gemm(NodeProto node, string name, OnnxAttributes a)
    {
        var where = $"ONNX node '{name}' (Gemm)";
        if (a.Int("transA", 0) != 0)
        {
            throw new InvalidDataException($"{where} transposes its input (transA=1); the importer takes Gemm as a dense layer.");
        }

        using var b = Constant(node.Input[1], where);
        using var weight = (a.Int("transB", 0) != 0 ? b.alias() : b.t()).mul(a.Float("alpha", 1));
        var hasBias = node.Input.Count > 2 && node.Input[2].Length > 0;
        var linear = nn.Linear(weight.shape[1], weight.shape[0], hasBias: hasBias);
        using (no_grad())
        {
            linear.weight!.copy_(weight);
            if (hasBias)
            {
                using var c = Constant(node.Input[2], where);
                if (c.numel() != 1 && c.numel() != weight.shape[0])
                {
                    throw new InvalidDataException($"{where} adds a C of shape [{string.Join(", ", c.shape)}]; the importer takes one bias per output ({weight.shape[0]}).");
                }

                using var bias = c.reshape(-1).mul(a.Float("beta", 1)).expand(weight.shape[0]);
                linear.bias!.copy_(bias);
            }
        }

        Register(name, linear);
        return new(name, node.OpType, [node.Input[0]], node.Output[0], (x, _, _) => linear.call(x[0]!));
    }

    private OnnxStep MatMulConstant(NodeProto node, string name)
    {
        using var b = Constant(node.Input[1], $"ONNX node '{name}' (MatMul)");
        if (b.dim() != 2)
        {
            throw new InvalidDataException($"ONNX node '{name}' (MatMul) multiplies by a {b.dim()}-D constant; the importer takes a 2-D one (a dense layer).");
        }

        var linear = nn.Linear(b.shape[0], b.shape[1], hasBias: false);
        using (no_grad())
        {
            using var weight = b.t();
            linear.weight!.copy_(weight);
        }

        Register(name, linear);
        return new(name, node.OpType, [node.Input[0]], node.Output[0], (x, _, _) => linear.call(x[0]!));
    }

    private static OnnxStep HardSigmoid(OnnxAttributes a, Func<Func<Tensor?[], bool, bool, Tensor>, string[], OnnxStep> step)
    {
        var (alpha, beta) = (a.Float("alpha", 0.2f), a.Float("beta", 0.5f));
        return step((x, _, _) => x[0]!.mul(alpha).add(beta).clamp(0, 1), []);
    }

    private OnnxStep Clip(OnnxAttributes a, string[] inputs, Func<Func<Tensor?[], bool, bool, Tensor>, string[], OnnxStep> step)
    {
        // Opset 11 moved min and max from attributes to optional inputs.
        double Bound(int input, string attribute, float fallback)
        {
            if (input < inputs.Length && inputs[input].Length > 0)
            {
                using var t = Constant(inputs[input], "Clip");
                return t.item<float>();
            }

            return a.Float(attribute, fallback);
        }

        var (min, max) = (Bound(1, "min", float.NegativeInfinity), Bound(2, "max", float.PositiveInfinity));
        return step((x, _, _) => x[0]!.clamp(min, max), []);
    }

    private OnnxStep Pool(string name, OnnxAttributes a, bool max, Func<Func<Tensor?[], bool, bool, Tensor>, string[], OnnxStep> step)
    {
        var kernel = a.Ints("kernel_shape") ?? throw new InvalidDataException($"ONNX node '{name}' has no kernel_shape.");
        if (kernel.Length != 2)
        {
            throw new InvalidDataException($"ONNX node '{name}' pools over {kernel.Length} dimensions; the importer takes 2-D pools.");
        }

        var strides = a.Ints("strides") ?? [1, 1];
        var dilations = a.Ints("dilations") ?? [1, 1];
        var pads = Pads(a, kernel[0], kernel[1], strides, dilations);
        var ceil = a.Int("ceil_mode", 0) != 0;
        var includePad = a.Int("count_include_pad", 0) != 0;
        bool? global = null;
        return step((x, _, probing) =>
        {
            var input = x[0]!;

            // An average over the whole map at the file's input size is a global average: so it is at other sizes too.
            if (!max && global is null && probing)
            {
                global = input.shape[2] == kernel[0] && input.shape[3] == kernel[1] && pads.For(input).All(p => p == 0);
                if (global.Value)
                {
                    _globalPools.Add(name);
                    Notes.Add($"The average pool '{name}' covers the whole {kernel[0]}x{kernel[1]} map at the file's input size; it averages the whole map at any size.");
                }
            }

            if (global == true)
            {
                return input.mean([2, 3], keepdim: true);
            }

            if (max)
            {
                using var padded = pads.Apply(input, double.NegativeInfinity);
                return F.max_pool2d(padded, kernel, strides, dilation: dilations, ceil_mode: ceil);
            }

            using var zeroPadded = pads.Apply(input, 0);
            var sum = F.avg_pool2d(zeroPadded, kernel, strides, ceil_mode: ceil, count_include_pad: true);
            if (includePad || pads.For(input).All(p => p == 0))
            {
                return sum;
            }

            // Excluding the padding: divide by the share of each window that covers the image.
            using var ones = ones_like(input.narrow(1, 0, 1));
            using var mask = pads.Apply(ones, 0);
            using var share = F.avg_pool2d(mask, kernel, strides, ceil_mode: ceil, count_include_pad: true);
            return sum.div(share);
        }, []);
    }

    private static OnnxStep Flatten(OnnxAttributes a, Func<Func<Tensor?[], bool, bool, Tensor>, string[], OnnxStep> step)
    {
        var axis = a.Int("axis", 1);
        return step((x, _, _) =>
        {
            var t = x[0]!;
            var split = axis < 0 ? t.dim() + axis : axis;
            var outer = t.shape.Take((int)split).Aggregate(1L, (p, v) => p * v);
            return t.reshape(outer, -1);
        }, []);
    }

    private OnnxStep Reshape(string name, OnnxAttributes a, string[] inputs, Func<Func<Tensor?[], bool, bool, Tensor>, string[], OnnxStep> step)
    {
        long[] shape;
        if (a.Ints("shape") is { } attribute)
        {
            shape = attribute;
        }
        else
        {
            using var t = Constant(inputs.ElementAtOrDefault(1) ?? string.Empty, $"ONNX node '{name}' (Reshape)");
            shape = t.data<long>().ToArray();
        }

        // A batch size fixed into the file (CNTK and some exporters write 1) would refuse every other batch.
        if (declaredBatch > 0 && shape.Length > 1 && shape[0] == declaredBatch && shape.Skip(1).All(v => v != -1))
        {
            shape = [-1, .. shape.Skip(1)];
            Notes.Add($"The reshape '{name}' fixed the batch at {declaredBatch}; it takes any batch.");
        }

        var allowZero = a.Int("allowzero", 0) != 0;
        return step((x, _, _) =>
        {
            var t = x[0]!;
            long[] target = [.. shape.Select((v, i) => v == 0 && !allowZero ? t.shape[i] : v)];
            return t.reshape(target);
        }, []);
    }

    private OnnxStep Pad(string name, OnnxAttributes a, string[] inputs, Func<Func<Tensor?[], bool, bool, Tensor>, string[], OnnxStep> step)
    {
        long[] pads;
        double value = a.Float("value", 0);
        if (a.Ints("pads") is { } attribute)
        {
            pads = attribute;
        }
        else
        {
            using var t = Constant(inputs.ElementAtOrDefault(1) ?? string.Empty, $"ONNX node '{name}' (Pad)");
            pads = t.data<long>().ToArray();
            if (inputs.Length > 2 && inputs[2].Length > 0)
            {
                using var v = Constant(inputs[2], $"ONNX node '{name}' (Pad)");
                value = v.item<float>();
            }
        }

        if (pads.Length != 8 || pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0)
        {
            throw new InvalidDataException($"ONNX node '{name}' (Pad) pads [{string.Join(", ", pads)}]; the importer pads the height and width of 4-D maps.");
        }

        var mode = a.String("mode", "constant") switch
        {
            "constant" => PaddingModes.Constant,
            "reflect" => PaddingModes.Reflect,
            "edge" => PaddingModes.Replicate,
            var other => throw new InvalidDataException($"ONNX node '{name}' (Pad) pads in mode '{other}'; the importer knows constant, reflect and edge."),
        };
        return step((x, _, _) => F.pad(x[0]!, [pads[3], pads[7], pads[2], pads[6]], mode, value), []);
    }

    private OnnxStep Dropout(OnnxAttributes a, string[] inputs, Func<Func<Tensor?[], bool, bool, Tensor>, string[], OnnxStep> step)
    {
        double ratio = a.Float("ratio", 0.5f);
        if (inputs.Length > 1 && inputs[1].Length > 0)
        {
            using var t = Constant(inputs[1], "Dropout");
            ratio = t.item<float>();
        }

        return step((x, training, _) => training ? F.dropout(x[0]!, ratio, training: true) : x[0]!.alias(), []);
    }
}
