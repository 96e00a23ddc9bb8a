using static TorchSharp.torch;

namespace DTSKD.Core.Onnx.Import;

/// <summary>
/// Reshape. A target computed from the image's shape runs as computed. A constant target was traced at the file's input
/// size: at the probe, its first size is taken from the input where it is the declared batch, and its last sizes where they
/// equal the input's last sizes (a channel shuffle's height and width), so the network takes any batch and, where nothing
/// else fixes it, any image size.
/// </summary>
internal static class ReshapeOperator
{
    /// <summary>One size of the target: a number (-1 inferred), or a dimension of the input (from the end when negative).</summary>
    private readonly record struct Size(long Value, int? FromInput);

    public static OnnxStep Reshape(OnnxNodeContext c)
    {
        var allowZero = c.A.Int("allowzero", 0) != 0;
        var constant = c.A.Ints("shape") ?? c.LongsAt(1);
        if (constant is null && !c.Has(1))
        {
            throw c.Refuse("has no target shape.");
        }

        Size[]? sizes = null;
        return c.Op((x, mode) =>
        {
            var input = x[0]!;
            var target = constant ?? OnnxTensors.Longs(x[1]!);
            if (constant is not null && mode.Probing && sizes is null)
            {
                sizes = Adapted(c, input.shape, target, allowZero);
            }

            long[] shape = sizes is null
                ? [.. target.Select((v, i) => v == 0 && !allowZero ? input.shape[i] : v)]
                : [.. sizes.Select(s => s.FromInput is { } d ? input.shape[d < 0 ? input.dim() + d : d] : s.Value)];
            try
            {
                return input.reshape(shape);
            }
            catch (Exception ex) when (ex is System.Runtime.InteropServices.ExternalException or ArgumentException)
            {
                throw new InvalidDataException($"{c.Where} cannot reshape [{string.Join(", ", input.shape)}] to [{string.Join(", ", target)}]" +
                    (shape.SequenceEqual(target) ? "." : $" (here [{string.Join(", ", shape)}]): the file fixes sizes of the input it was traced at."), ex);
            }
        }, (w, inputs) =>
        {
            if (constant is null)
            {
                return OnnxStep.AsWritten(c.Node)(w, inputs);
            }

            var adapted = sizes ?? [.. constant.Select((v, i) => v == 0 && !allowZero ? new Size(0, i) : new Size(v, null))];
            if (adapted.Select((s, i) => s.FromInput is null || s.FromInput == i).All(b => b))
            {
                // Sizes kept from the same position are ONNX's 0.
                return w.Node("Reshape", [inputs[0], w.Longs("shape", [.. adapted.Select(s => s.FromInput is null ? s.Value : 0)])], []);
            }

            var shape = w.Single("Shape", [inputs[0]]);
            var parts = adapted.Select((s, i) => s.FromInput is { } d
                ? w.Single("Gather", [shape, w.Longs($"dim{i}", d)], OnnxAttribute.Int("axis", 0))
                : w.Longs($"size{i}", s.Value)).ToList();
            return w.Node("Reshape", [inputs[0], w.Single("Concat", parts, OnnxAttribute.Int("axis", 0))], []);
        }, constant is null ? [0, 1] : [0]);
    }

    /// <summary>The target with the batch and the trailing sizes it shares with the input taken from the input.</summary>
    private static Size[] Adapted(OnnxNodeContext c, long[] input, long[] target, bool allowZero)
    {
        var sizes = target.Select((v, i) => v == 0 && !allowZero ? new Size(0, i) : new Size(v, null)).ToArray();
        var batch = c.DeclaredBatch > 0 && target.Length > 1 && input.Length > 1 && target[0] == c.DeclaredBatch && input[0] == c.DeclaredBatch;
        if (batch)
        {
            sizes[0] = new Size(0, 0);
        }

        var trailing = 0;
        for (var j = 1; j < target.Length && j < input.Length && target[^j] == input[^j] && target[^j] > 1; j++)
        {
            sizes[^j] = new Size(0, -j);
            trailing++;
        }

        if (batch || trailing > 0)
        {
            c.Note($"The reshape '{c.Name}' fixed [{string.Join(", ", target)}] at the file's input size; it takes {(batch ? "the batch" : "")}{(batch && trailing > 0 ? " and " : "")}{(trailing > 0 ? $"its last {trailing} size{(trailing > 1 ? "s" : "")}" : "")} from its input.");
        }

        return sizes;
    }
}
