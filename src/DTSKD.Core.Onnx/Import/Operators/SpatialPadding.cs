using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DTSKD.Core.Onnx.Import;

/// <summary>
/// The padding of a convolution or pool over height and width: fixed [top, left, bottom, right], or computed from each
/// input for auto_pad SAME_UPPER/SAME_LOWER.
/// </summary>
internal sealed record SpatialPadding(long[]? Fixed, Func<Tensor, long[]>? Computed)
{
    /// <summary>Reads a node's pads or auto_pad for its kernel, strides and dilations.</summary>
    public static SpatialPadding Of(OnnxAttributes a, long kh, long kw, long[] strides, long[] dilations)
    {
        var auto = a.String("auto_pad", "NOTSET");
        if (auto is "SAME_UPPER" or "SAME_LOWER")
        {
            return new SpatialPadding(null, x =>
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

        return new SpatialPadding(auto == "VALID" ? [0, 0, 0, 0] : a.Ints("pads") ?? [0, 0, 0, 0], null);
    }

    /// <summary>Whether the padding is fixed and equal on both sides of each dimension (then the layer pads itself).</summary>
    public bool Symmetric => Fixed is { } p && p[0] == p[2] && p[1] == p[3];

    public long[] For(Tensor x) => Fixed ?? Computed!(x);

    /// <summary>Pads H and W explicitly (ONNX's order [top, left, bottom, right]; F.pad takes [left, right, top, bottom]).</summary>
    public Tensor Apply(Tensor x, double value)
    {
        var p = For(x);
        return p.All(v => v == 0) ? x.alias() : F.pad(x, [p[1], p[3], p[0], p[2]], PaddingModes.Constant, value);
    }
}
