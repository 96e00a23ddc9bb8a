using Onnx;
using static TorchSharp.torch;

namespace DTSKD.Core.Onnx.Import;

/// <summary>A node's attributes by name, with ONNX's defaults, and initializers as TorchSharp tensors.</summary>
internal sealed class OnnxAttributes(NodeProto node)
{
    private readonly Dictionary<string, AttributeProto> _attributes = node.Attribute.ToDictionary(a => a.Name, StringComparer.Ordinal);

    public long Int(string name, long fallback) => _attributes.TryGetValue(name, out var a) ? a.I : fallback;

    public float Float(string name, float fallback) => _attributes.TryGetValue(name, out var a) ? a.F : fallback;

    public string String(string name, string fallback) => _attributes.TryGetValue(name, out var a) ? a.S.ToStringUtf8() : fallback;

    public long[]? Ints(string name) => _attributes.TryGetValue(name, out var a) ? [.. a.Ints] : null;

    public TensorProto? Tensor(string name) => _attributes.TryGetValue(name, out var a) ? a.T : null;

    /// <summary>A tensor stored in the file (an initializer or a Constant's value), as a CPU tensor the caller owns.</summary>
    /// <exception cref="InvalidDataException">Its data type is not one a CNN's weights and shapes use, or its data lies outside the file.</exception>
    public static Tensor ToTensor(TensorProto proto, string where)
    {
        if (proto.DataLocation == TensorProto.Types.DataLocation.External)
        {
            throw new InvalidDataException($"{where}: tensor '{proto.Name}' keeps its data in an external file; save the model with its weights inside (onnx.save(model, path, save_as_external_data=False)).");
        }

        long[] shape = [.. proto.Dims];
        var count = shape.Aggregate(1L, (a, b) => a * b);
        var raw = proto.RawData.Span;
        return (TensorProto.Types.DataType)proto.DataType switch
        {
            TensorProto.Types.DataType.Float => tensor(raw.Length > 0 ? Floats(raw) : [.. proto.FloatData], shape),
            TensorProto.Types.DataType.Double => tensor(raw.Length > 0 ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(raw).ToArray() : [.. proto.DoubleData], shape).to(ScalarType.Float32),
            TensorProto.Types.DataType.Int64 => tensor(raw.Length > 0 ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(raw).ToArray() : [.. proto.Int64Data], shape),
            TensorProto.Types.DataType.Int32 => tensor(raw.Length > 0 ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(raw).ToArray() : [.. proto.Int32Data], shape).to(ScalarType.Int64),
            _ => throw new InvalidDataException($"{where}: tensor '{proto.Name}' is of ONNX data type {(TensorProto.Types.DataType)proto.DataType}; the importer reads float, double, int32 and int64 tensors."),
        } is var t && t.numel() == count ? t : throw new InvalidDataException($"{where}: tensor '{proto.Name}' holds {t.numel()} values for its shape [{string.Join(", ", shape)}].");
    }

    private static float[] Floats(ReadOnlySpan<byte> raw) => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(raw).ToArray();
}
