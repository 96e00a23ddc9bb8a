using System.Runtime.InteropServices;
using Onnx;
using static TorchSharp.torch;
using DataType = Onnx.TensorProto.Types.DataType;

namespace DTSKD.Core.Onnx.Import;

/// <summary>A node's attributes by name, with ONNX's defaults, and the file's tensors as TorchSharp tensors.</summary>
internal sealed class OnnxAttributes(NodeProto node)
{
    /// <summary>The most values one tensor of a file may hold (2^31): far above any classifier's largest weight.</summary>
    public const long MaxElements = 1L << 31;

    private readonly Dictionary<string, AttributeProto> _attributes = node.Attribute.ToDictionary(a => a.Name, StringComparer.Ordinal);

    public bool Has(string name) => _attributes.ContainsKey(name);

    public long Int(string name, long fallback) => _attributes.TryGetValue(name, out var a) ? a.I : fallback;

    public float Float(string name, float fallback) => _attributes.TryGetValue(name, out var a) ? a.F : fallback;

    public string String(string name, string fallback) => _attributes.TryGetValue(name, out var a) ? a.S.ToStringUtf8() : fallback;

    public long[]? Ints(string name) => _attributes.TryGetValue(name, out var a) ? [.. a.Ints] : null;

    public float[]? Floats(string name) => _attributes.TryGetValue(name, out var a) ? [.. a.Floats] : null;

    public TensorProto? Tensor(string name) => _attributes.TryGetValue(name, out var a) ? a.T : null;

    /// <summary>The node's attributes, copied (for writing the node again).</summary>
    public IEnumerable<AttributeProto> Copies(params string[] except) => node.Attribute.Where(a => !except.Contains(a.Name)).Select(a => a.Clone());

    /// <summary>The number of values a tensor declares, checked: every dimension 0 or more, the product at most <see cref="MaxElements"/>.</summary>
    /// <exception cref="InvalidDataException">A negative dimension, or more values than any tensor of a classifier holds.</exception>
    public static long Count(TensorProto proto, string where)
    {
        var count = 1L;
        foreach (var d in proto.Dims)
        {
            if (d < 0 || (d > 0 && count > MaxElements / d))
            {
                throw new InvalidDataException($"{where}: tensor '{proto.Name}' declares the shape [{string.Join(", ", proto.Dims)}], " +
                    (d < 0 ? "with a negative dimension." : $"more than {MaxElements} values."));
            }

            count *= d;
        }

        return count;
    }

    /// <summary>Checks that a tensor holds what its shape declares and keeps its data inside the file, without reading the values.</summary>
    /// <exception cref="InvalidDataException">External data, an unknown data type, or a shape that claims more values than the tensor holds.</exception>
    public static void Check(TensorProto proto, string where)
    {
        if (proto.DataLocation == TensorProto.Types.DataLocation.External || proto.ExternalData.Count > 0)
        {
            throw new InvalidDataException($"{where}: tensor '{proto.Name}' keeps its data in an external file, which the importer never opens; save the model with its weights inside (onnx.save(model, path, save_as_external_data=False)).");
        }

        var count = Count(proto, where);
        var type = (DataType)proto.DataType;
        var size = ElementSize(type) ?? throw new InvalidDataException(
            $"{where}: tensor '{proto.Name}' is of ONNX data type {type}; the importer reads float, float16, double, int8/16/32/64, uint8 and bool tensors.");
        var held = proto.RawData.Length > 0 ? proto.RawData.Length / size
            : type switch
            {
                DataType.Float => proto.FloatData.Count,
                DataType.Double => proto.DoubleData.Count,
                DataType.Int64 => proto.Int64Data.Count,
                _ => proto.Int32Data.Count,
            };
        if (held != count || (proto.RawData.Length > 0 && proto.RawData.Length % size != 0))
        {
            throw new InvalidDataException($"{where}: tensor '{proto.Name}' declares [{string.Join(", ", proto.Dims)}] ({count} values) but holds {held}.");
        }
    }

    /// <summary>A tensor stored in the file (an initializer or a Constant's value), as a CPU tensor the caller owns: floats as float32, integers as int64.</summary>
    /// <exception cref="InvalidDataException">As <see cref="Check"/>.</exception>
    public static Tensor ToTensor(TensorProto proto, string where)
    {
        Check(proto, where);
        long[] shape = [.. proto.Dims];
        var raw = proto.RawData.Span;
        var raws = raw.Length > 0;
        return (DataType)proto.DataType switch
        {
            DataType.Float => tensor(raws ? MemoryMarshal.Cast<byte, float>(raw).ToArray() : [.. proto.FloatData], shape),
            DataType.Double => Float32(tensor(raws ? MemoryMarshal.Cast<byte, double>(raw).ToArray() : [.. proto.DoubleData], shape)),
            DataType.Float16 => tensor(raws ? MemoryMarshal.Cast<byte, Half>(raw).ToArray().Select(h => (float)h).ToArray()
                : proto.Int32Data.Select(v => (float)BitConverter.UInt16BitsToHalf((ushort)v)).ToArray(), shape),
            DataType.Int64 => tensor(raws ? MemoryMarshal.Cast<byte, long>(raw).ToArray() : [.. proto.Int64Data], shape),
            DataType.Int32 => tensor(raws ? MemoryMarshal.Cast<byte, int>(raw).ToArray().Select(v => (long)v).ToArray() : proto.Int32Data.Select(v => (long)v).ToArray(), shape),
            DataType.Int16 => tensor(raws ? MemoryMarshal.Cast<byte, short>(raw).ToArray().Select(v => (long)v).ToArray() : proto.Int32Data.Select(v => (long)v).ToArray(), shape),
            DataType.Int8 => tensor(raws ? raw.ToArray().Select(v => (long)(sbyte)v).ToArray() : proto.Int32Data.Select(v => (long)v).ToArray(), shape),
            DataType.Uint8 => tensor(raws ? raw.ToArray().Select(v => (long)v).ToArray() : proto.Int32Data.Select(v => (long)v).ToArray(), shape),
            DataType.Bool => tensor(raws ? raw.ToArray().Select(v => v != 0).ToArray() : proto.Int32Data.Select(v => v != 0).ToArray(), shape),
            var other => throw new InvalidDataException($"{where}: tensor '{proto.Name}' is of ONNX data type {other}."),
        };

        static Tensor Float32(Tensor t)
        {
            using (t)
            {
                return t.to(ScalarType.Float32);
            }
        }
    }

    private static int? ElementSize(DataType type) => type switch
    {
        DataType.Float or DataType.Int32 => 4,
        DataType.Double or DataType.Int64 => 8,
        DataType.Float16 or DataType.Int16 => 2,
        DataType.Int8 or DataType.Uint8 or DataType.Bool => 1,
        _ => null,
    };
}
