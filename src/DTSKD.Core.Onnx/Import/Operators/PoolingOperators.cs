using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DTSKD.Core.Onnx.Import;

/// <summary>Max and average pools (pads, SAME, ceil_mode, padding counted or not), global pools, and reductions over axes.</summary>
internal static class PoolingOperators
{
    public static OnnxStep Pool(OnnxNodeContext c)
    {
        var max = c.Node.OpType == "MaxPool";
        var kernel = c.A.Ints("kernel_shape") ?? throw c.Refuse("has no kernel_shape.");
        if (kernel.Length != 2)
        {
            throw c.Refuse($"pools over {kernel.Length} dimensions; the importer takes 2-D pools.");
        }

        if (max && c.Node.Output.Count > 1 && c.Node.Output[1].Length > 0)
        {
            throw c.Refuse("is read for its indices; the importer takes the pooled values only.");
        }

        var strides = c.A.Ints("strides") ?? [1, 1];
        var dilations = c.A.Ints("dilations") ?? [1, 1];
        var pads = SpatialPadding.Of(c.A, kernel[0], kernel[1], strides, dilations);
        var ceil = c.A.Int("ceil_mode", 0) != 0;
        var includePad = c.A.Int("count_include_pad", 0) != 0;
        if (!max && dilations.Any(d => d != 1))
        {
            throw c.Refuse("dilates its average; the importer takes average pools without dilation.");
        }

        bool? global = null;
        return c.Op((x, mode) =>
        {
            var input = x[0]!;

            // An average over the whole map at the file's input size is a global average: so it is at other sizes too.
            if (!max && global is null && mode.Probing)
            {
                global = input.shape[2] == kernel[0] && input.shape[3] == kernel[1] && pads.For(input).All(p => p == 0);
                if (global.Value)
                {
                    c.Note($"The average pool '{c.Name}' covers the whole {kernel[0]}x{kernel[1]} map at the file's input size; it averages the whole map at any size.");
                }
            }

            if (global == true)
            {
                return input.mean([2, 3], keepdim: true);
            }

            if (max)
            {
                if (pads.Symmetric)
                {
                    return F.max_pool2d(input, kernel, strides, [pads.Fixed![0], pads.Fixed[1]], dilations, ceil_mode: ceil);
                }

                using var padded = pads.Apply(input, double.NegativeInfinity);
                return F.max_pool2d(padded, kernel, strides, dilation: dilations, ceil_mode: ceil);
            }

            if (pads.Symmetric && (includePad || pads.Fixed!.All(p => p == 0) || !ceil))
            {
                return F.avg_pool2d(input, kernel, strides, [pads.Fixed![0], pads.Fixed[1]], ceil_mode: ceil, count_include_pad: includePad);
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
            using (sum)
            {
                return sum.div(share);
            }
        }, (w, inputs) => global == true ? w.Node("GlobalAveragePool", inputs, []) : OnnxStep.AsWritten(c.Node)(w, inputs), 0);
    }

    public static OnnxStep Global(OnnxNodeContext c)
    {
        var max = c.Node.OpType == "GlobalMaxPool";
        return c.Unary(x =>
        {
            long[] spatial = [.. Enumerable.Range(2, (int)x.dim() - 2).Select(d => (long)d)];
            return max ? x.amax(spatial, keepdim: true) : x.mean(spatial, keepdim: true);
        });
    }

    /// <summary>ReduceMean, ReduceSum, ReduceMax, ReduceMin: axes as an attribute (ReduceSum before 13, the others before 18) or an input.</summary>
    public static OnnxStep Reduce(OnnxNodeContext c)
    {
        var op = c.Node.OpType;
        var axesAsInput = op == "ReduceSum" ? c.Opset >= 13 : c.Opset >= 18;
        long[]? fixedAxes = axesAsInput ? (c.Has(1) ? c.LongsAt(1) : []) : c.A.Ints("axes") ?? [];
        var keep = c.A.Int("keepdims", 1) != 0;
        var noopWhenEmpty = c.A.Int("noop_with_empty_axes", 0) != 0;
        return c.Op((x, _) =>
        {
            var input = x[0]!;
            var axes = fixedAxes ?? OnnxTensors.Longs(x[1]!);
            if (axes.Length == 0 && noopWhenEmpty)
            {
                return input.alias();
            }

            long[] dims = axes.Length == 0 ? [.. Enumerable.Range(0, (int)input.dim()).Select(d => (long)d)] : [.. axes.Select(a => OnnxTensors.Axis(a, input.dim(), c))];
            return op switch
            {
                "ReduceMean" => input.mean(dims, keepdim: keep),
                "ReduceSum" => input.sum(dims, keepdim: keep),
                "ReduceMax" => input.amax(dims, keepdim: keep),
                _ => input.amin(dims, keepdim: keep),
            };
        }, (w, inputs) =>
        {
            // Opset 17: ReduceSum takes its axes as an input, the others as an attribute (which must then be known).
            var axes = fixedAxes ?? throw new NotSupportedException($"Cannot export {c.Where}: its axes are computed at run time.");
            List<global::Onnx.AttributeProto> attributes = [OnnxAttribute.Int("keepdims", keep ? 1 : 0)];
            if (op == "ReduceSum")
            {
                attributes.Add(OnnxAttribute.Int("noop_with_empty_axes", noopWhenEmpty ? 1 : 0));
                return w.Node(op, axes.Length == 0 ? [inputs[0]] : [inputs[0], w.Longs("axes", axes)], attributes);
            }

            if (axes.Length > 0)
            {
                attributes.Add(OnnxAttribute.Ints("axes", axes));
            }

            return w.Node(op, [inputs[0]], attributes);
        }, fixedAxes is null ? [0, 1] : [0]);
    }
}
