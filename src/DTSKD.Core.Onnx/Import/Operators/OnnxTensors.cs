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

    /// <summary>The two operands of an element-wise operation on one device (a host constant moves to the other's device).</summary>
    public static (Tensor A, Tensor B) Aligned(Tensor a, Tensor b) =>
        a.device == b.device ? (a, b) : a.device.type == DeviceType.CPU ? (a.to(b.device), b) : (a, b.to(a.device));

    /// <summary>A shape as a host int64 vector.</summary>
    public static Tensor ShapeOf(long[] shape) => tensor(shape, [shape.LongLength]);

    /// <summary>Whether a tensor holds integers (ONNX's integer arithmetic: division truncates).</summary>
    public static bool IsInteger(Tensor t) => t.dtype is ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int16 or ScalarType.Int8 or ScalarType.Byte;
}
