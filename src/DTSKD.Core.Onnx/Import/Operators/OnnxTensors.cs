using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core.Onnx.Import;

/// <summary>Small tensor helpers the operators share.</summary>
internal static class OnnxTensors
{
    /// <summary>A tensor's values as integers (shapes, axes, indices), read on the CPU.</summary>
    public static long[] Longs(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.cpu().to(ScalarType.Int64).contiguous().data<long>().ToArray();
    }

    /// <summary>A tensor's values as doubles.</summary>
    public static double[] Doubles(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.cpu().to(ScalarType.Float64).contiguous().data<double>().ToArray();
    }

    /// <summary>An axis in [0, rank), from ONNX's [-rank, rank).</summary>
    public static long Axis(long axis, long rank, OnnxNodeContext? c = null) =>
        axis >= -rank && axis < rank ? (axis < 0 ? axis + rank : axis)
        : throw new InvalidDataException($"{c?.Where ?? "ONNX node"}: axis {axis} is outside a tensor of {rank} dimensions.");

    /// <summary>
    /// The two operands of an element-wise operation on one device (a host constant moves to the other's device) and, when
    /// both are floats, in one float type: the narrower, so a float32 weight meets bfloat16 activations as bfloat16 (as
    /// autocast casts it) instead of turning them into float32 that the next half-precision layer refuses.
    /// </summary>
    public static (Tensor A, Tensor B) Aligned(Tensor a, Tensor b)
    {
        if (a.device != b.device)
        {
            (a, b) = a.device.type == DeviceType.CPU ? (a.to(b.device), b) : (a, b.to(a.device));
        }

        if (a.dtype != b.dtype && a.is_floating_point() && b.is_floating_point())
        {
            (a, b) = Width(a.dtype) <= Width(b.dtype) ? (a, b.to(a.dtype)) : (a.to(b.dtype), b);
        }

        return (a, b);
    }

    /// <summary>A float type's width in bytes (for choosing the narrowest).</summary>
    public static int Width(ScalarType type) => type switch
    {
        ScalarType.BFloat16 or ScalarType.Float16 => 2,
        ScalarType.Float32 => 4,
        _ => 8,
    };

    /// <summary>A shape as a host int64 vector.</summary>
    public static Tensor ShapeOf(long[] shape) => tensor(shape, [shape.LongLength]);

    /// <summary>Whether a tensor holds integers (ONNX's integer arithmetic: division truncates).</summary>
    public static bool IsInteger(Tensor t) => t.dtype is ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int16 or ScalarType.Int8 or ScalarType.Byte;
}
