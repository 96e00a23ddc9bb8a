using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using DataType = Onnx.TensorProto.Types.DataType;

namespace DTSKD.Core.Onnx.Import;

/// <summary>
/// Operators that move values or compute with shapes: Shape, Gather, Squeeze/Unsqueeze, Concat, Slice, Split, Flatten,
/// Transpose, Expand, Cast, ConstantOfShape, Pad. Shapes computed from the image run at run time on host tensors, so
/// the network takes any batch; axes and sizes given as inputs are read at import where they are constants.
/// </summary>
internal static class ShapeOperators
{
    public static OnnxStep Shape(OnnxNodeContext c)
    {
        var (start, end) = (c.A.Int("start", 0), c.A.Has("end") ? c.A.Int("end", 0) : (long?)null);
        return c.Unary(x =>
        {
            var rank = x.dim();
            var from = Math.Clamp(start < 0 ? start + rank : start, 0, rank);
            var to = Math.Clamp(end is { } e ? (e < 0 ? e + rank : e) : rank, 0, rank);
            return OnnxTensors.ShapeOf([.. x.shape.Skip((int)from).Take((int)Math.Max(0, to - from))]);
        });
    }

    public static OnnxStep Gather(OnnxNodeContext c)
    {
        var axis = c.A.Int("axis", 0);
        return c.Op((x, _) =>
        {
            var data = x[0]!;
            var a = OnnxTensors.Axis(axis, data.dim(), c);
            var size = data.shape[a];
            using var raw = x[1]!.to(ScalarType.Int64).to(data.device);
            using var wrapped = where(raw.lt(0), raw.add(size), raw);
            using var flat = wrapped.reshape(-1);
            using var picked = data.index_select(a, flat);
            long[] shape = [.. data.shape.Take((int)a), .. raw.shape, .. data.shape.Skip((int)a + 1)];
            return picked.reshape(shape);
        });
    }

    /// <summary>Unsqueeze and Squeeze: axes as an attribute before opset 13, an input from 13; written with the input.</summary>
    public static OnnxStep Squeeze(OnnxNodeContext c)
    {
        var unsqueeze = c.Node.OpType == "Unsqueeze";
        long[]? axes = c.Opset < 13 ? c.A.Ints("axes") : c.Has(1) ? c.RequireConstant(1, "axes") is var t ? OnnxTensors.Longs(t) : null : null;
        if (unsqueeze && axes is null)
        {
            throw c.Refuse("has no axes.");
        }

        return c.Unary(x =>
        {
            if (unsqueeze)
            {
                var rank = x.dim() + axes!.Length;
                var result = x.alias();
                foreach (var a in axes.Select(a => OnnxTensors.Axis(a, rank, c)).Order())
                {
                    using var previous = result;
                    result = previous.unsqueeze(a);
                }

                return result;
            }

            var drop = axes is null ? [.. Enumerable.Range(0, (int)x.dim()).Where(d => x.shape[d] == 1).Select(d => (long)d)] : axes.Select(a => OnnxTensors.Axis(a, x.dim(), c)).ToHashSet();
            if (drop.FirstOrDefault(d => x.shape[d] != 1, -1) is var wrong && wrong >= 0)
            {
                throw new InvalidDataException($"{c.Where} squeezes dimension {wrong} of [{string.Join(", ", x.shape)}], which is not 1.");
            }

            return x.reshape([.. x.shape.Where((_, d) => !drop.Contains(d))]);
        }, (w, inputs) => w.Node(c.Node.OpType, axes is null ? [inputs[0]] : [inputs[0], w.Longs("axes", axes)], []));
    }

    public static OnnxStep Concat(OnnxNodeContext c)
    {
        var axis = c.A.Int("axis", 0);
        return c.Op((x, _) =>
        {
            var parts = x.Where(t => t is not null).Select(t => t!).ToList();
            var device = parts.FirstOrDefault(t => t.device.type != DeviceType.CPU)?.device ?? parts[0].device;
            var dim = OnnxTensors.Axis(axis, parts[0].dim(), c);
            using var scope = NewDisposeScope();

            // A float32 constant beside bfloat16 activations joins them in bfloat16 (see OnnxTensors.Aligned).
            var floats = parts.Where(t => t.is_floating_point()).Select(t => t.dtype).Distinct().ToList();
            var narrowest = floats.Count > 1 ? floats.MinBy(OnnxTensors.Width) : (ScalarType?)null;
            return cat([.. parts.Select(t => narrowest is { } type && t.is_floating_point() ? t.to(device).to(type) : t.to(device))], dim).MoveToOuterDisposeScope();
        });
    }

    public static OnnxStep Flatten(OnnxNodeContext c)
    {
        var axis = c.A.Int("axis", 1);
        return c.Unary(x =>
        {
            var split = axis < 0 ? x.dim() + axis : axis;
            var outer = x.shape.Take((int)split).Aggregate(1L, (p, v) => p * v);
            return x.reshape(outer, -1);
        });
    }

    public static OnnxStep Transpose(OnnxNodeContext c)
    {
        var perm = c.A.Ints("perm");
        return c.Unary(x => x.permute(perm ?? [.. Enumerable.Range(0, (int)x.dim()).Reverse().Select(d => (long)d)]));
    }

    /// <summary>Slice: starts, ends, axes and steps as attributes before opset 10, inputs from 10 (constants or computed); ends clamped as ONNX clamps them.</summary>
    public static OnnxStep Slice(OnnxNodeContext c)
    {
        var attributes = c.Opset < 10;
        (long[]? Starts, long[]? Ends, long[]? Axes, long[]? Steps) known = attributes
            ? (c.A.Ints("starts"), c.A.Ints("ends"), c.A.Ints("axes"), null)
            : (c.LongsAt(1), c.LongsAt(2), c.Has(3) ? c.LongsAt(3) : null, c.Has(4) ? c.LongsAt(4) : null);
        return c.Op((x, _) =>
        {
            var data = x[0]!;
            var starts = known.Starts ?? OnnxTensors.Longs(x[1]!);
            var ends = known.Ends ?? OnnxTensors.Longs(x[2]!);
            var axes = known.Axes ?? (!attributes && c.Has(3) ? OnnxTensors.Longs(x[3]!) : [.. Enumerable.Range(0, starts.Length).Select(i => (long)i)]);
            var steps = known.Steps ?? (!attributes && c.Has(4) ? OnnxTensors.Longs(x[4]!) : [.. Enumerable.Repeat(1L, starts.Length)]);
            var result = data.alias();
            for (var i = 0; i < starts.Length; i++)
            {
                var axis = OnnxTensors.Axis(axes[i], data.dim(), c);
                var size = data.shape[axis];
                var step = steps[i];
                if (step == 0)
                {
                    throw new InvalidDataException($"{c.Where} slices with a step of 0.");
                }

                long Clamp(long v, long low, long high) => Math.Clamp(v < 0 ? v + size : v, low, high);
                using var previous = result;
                if (step > 0)
                {
                    var (from, to) = (Clamp(starts[i], 0, size), Clamp(ends[i], 0, size));
                    result = previous.slice(axis, from, Math.Max(from, to), step);
                }
                else
                {
                    var (from, to) = (Clamp(starts[i], -1, size - 1), Clamp(ends[i], -1, size - 1));
                    using var index = from > to ? arange(from, to, step, dtype: ScalarType.Int64, device: data.device) : empty(0, dtype: ScalarType.Int64, device: data.device);
                    result = previous.index_select(axis, index);
                }
            }

            return result;
        }, (w, inputs) =>
        {
            if (!attributes)
            {
                return OnnxStep.AsWritten(c.Node)(w, inputs);
            }

            List<string> ins = [inputs[0], w.Longs("starts", known.Starts!), w.Longs("ends", known.Ends!)];
            if (known.Axes is { } a)
            {
                ins.Add(w.Longs("axes", a));
            }

            return w.Node("Slice", ins, []);
        }, attributes ? [0] : [.. Enumerable.Range(0, c.InputCount)]);
    }

    /// <summary>Split: sizes from the attribute (before 13), the input (from 13) or equal parts, one per output.</summary>
    public static OnnxStep Split(OnnxNodeContext c)
    {
        var axis = c.A.Int("axis", 0);
        var sizes = c.Opset < 13 ? c.A.Ints("split") : c.Has(1) ? OnnxTensors.Longs(c.RequireConstant(1, "split sizes")) : null;
        var parts = c.Node.Output.Count;
        return c.Step((x, _) =>
        {
            var data = x[0]!;
            var a = OnnxTensors.Axis(axis, data.dim(), c);
            var size = data.shape[a];
            var lengths = sizes ?? (size % parts == 0 ? [.. Enumerable.Repeat(size / parts, parts)]
                : [.. Enumerable.Repeat((size + parts - 1) / parts, parts - 1), size - ((size + parts - 1) / parts * (parts - 1))]);
            if (lengths.Sum() != size || lengths.Length != parts)
            {
                throw new InvalidDataException($"{c.Where} splits {size} values of dimension {a} into [{string.Join(", ", lengths)}] for {parts} outputs.");
            }

            return data.split(lengths, a);
        }, (w, inputs) => w.Node("Split", sizes is null ? [inputs[0]] : [inputs[0], w.Longs("split", sizes)], [OnnxAttribute.Int("axis", axis)], parts), 0);
    }

    /// <summary>Expand: numpy broadcasting of the input to a shape (a 1 keeps the input's size).</summary>
    public static OnnxStep Expand(OnnxNodeContext c) => c.Op((x, _) =>
    {
        var data = x[0]!;
        var target = OnnxTensors.Longs(x[1]!);
        var rank = Math.Max(data.dim(), target.Length);
        long[] shape = [.. Enumerable.Range(0, (int)rank).Select(i =>
        {
            var d = i - (rank - data.dim()) is var k && k >= 0 ? data.shape[k] : 1;
            var t = i - (rank - target.Length) is var j && j >= 0 ? target[j] : 1;
            return d == 1 ? t : t == 1 || t == d ? d : throw new InvalidDataException($"{c.Where} expands [{string.Join(", ", data.shape)}] to [{string.Join(", ", target)}], which do not broadcast.");
        })];
        using var reshaped = data.reshape([.. Enumerable.Repeat(1L, (int)(rank - data.dim())), .. data.shape]);
        return reshaped.expand(shape).contiguous();
    });

    /// <summary>Cast: a float stays in the network's float type (the precision policy chooses it); integers become int64, floats of integers float32.</summary>
    public static OnnxStep Cast(OnnxNodeContext c)
    {
        var to = (DataType)c.A.Int("to", (long)DataType.Float);
        return c.Unary(x => to switch
        {
            DataType.Float or DataType.Double or DataType.Float16 or DataType.Bfloat16 => x.is_floating_point() ? x.alias() : x.to(ScalarType.Float32),
            DataType.Int64 or DataType.Int32 or DataType.Int16 or DataType.Int8 or DataType.Uint8 => x.to(ScalarType.Int64),
            DataType.Bool => x.ne(0),
            _ => throw new InvalidDataException($"{c.Where} casts to {to}; the importer casts to float, integer and bool types."),
        });
    }

    public static OnnxStep ConstantOfShape(OnnxNodeContext c)
    {
        var value = c.A.Tensor("value") is { } t ? OnnxAttributes.ToTensor(t, c.Where) : tensor(0f);
        return c.Unary(x =>
        {
            var shape = OnnxTensors.Longs(x);
            if (shape.Aggregate(1L, (p, v) => v < 0 || (v > 0 && p > OnnxAttributes.MaxElements / v) ? -1 : p * v) < 0)
            {
                throw new InvalidDataException($"{c.Where} makes a tensor of shape [{string.Join(", ", shape)}].");
            }

            using var flat = value.reshape(-1);
            return flat.expand(shape).contiguous();
        });
    }

    /// <summary>Pad of height and width: pads (and value) as attributes before opset 11, constant inputs from 11; constant, reflect and edge modes.</summary>
    public static OnnxStep Pad(OnnxNodeContext c)
    {
        long[] pads;
        double value;
        if (c.Opset < 11)
        {
            pads = c.A.Ints("pads") ?? throw c.Refuse("has no pads.");
            value = c.A.Float("value", 0);
        }
        else
        {
            pads = OnnxTensors.Longs(c.RequireConstant(1, "pads"));
            value = c.Has(2) ? OnnxTensors.Doubles(c.RequireConstant(2, "padding value"))[0] : 0;
            if (c.Has(3))
            {
                throw c.Refuse("pads chosen axes (opset 18's axes input); the importer pads the height and width of 4-D maps.");
            }
        }

        if (pads.Length != 8 || pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0)
        {
            throw c.Refuse($"pads [{string.Join(", ", pads)}]; the importer pads the height and width of 4-D maps.");
        }

        var name = c.A.String("mode", "constant");
        var mode = name switch
        {
            "constant" => PaddingModes.Constant,
            "reflect" => PaddingModes.Reflect,
            "edge" => PaddingModes.Replicate,
            var other => throw c.Refuse($"pads in mode '{other}'; the importer knows constant, reflect and edge."),
        };
        return c.Unary(x => F.pad(x, [pads[3], pads[7], pads[2], pads[6]], mode, value),
            (w, inputs) => w.Node("Pad", [inputs[0], w.Longs("pads", pads), w.Scalar("pad_value", (float)value)], [OnnxAttribute.String("mode", name)]));
    }
}
