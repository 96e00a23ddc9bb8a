using System.Buffers;
using System.Text;

namespace DTSKD.Core.Onnx;

/// <summary>
/// The few Protocol Buffers encodings an ONNX file needs (varints, length-delimited strings, bytes and nested
/// messages), so the package depends on nothing but DTSKD.Core.
/// </summary>
internal sealed class ProtoWriter
{
    private readonly ArrayBufferWriter<byte> _buffer = new();

    public void Varint(int field, long value)
    {
        Tag(field, 0);
        Raw((ulong)value);
    }

    public void String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    public void Bytes(int field, ReadOnlySpan<byte> value)
    {
        Tag(field, 2);
        Raw((ulong)value.Length);
        _buffer.Write(value);
    }

    public void Float(int field, float value)
    {
        Tag(field, 5);
        Span<byte> bytes = stackalloc byte[4];
        BitConverter.TryWriteBytes(bytes, value);
        if (!BitConverter.IsLittleEndian)
        {
            bytes.Reverse();
        }

        _buffer.Write(bytes);
    }

    /// <summary>A repeated int64 field, packed (one length-delimited run of varints).</summary>
    public void PackedVarints(int field, IEnumerable<long> values)
    {
        var inner = new ProtoWriter();
        foreach (var v in values)
        {
            inner.Raw((ulong)v);
        }

        Bytes(field, inner._buffer.WrittenSpan);
    }

    public void Message(int field, Action<ProtoWriter> write)
    {
        var inner = new ProtoWriter();
        write(inner);
        Bytes(field, inner._buffer.WrittenSpan);
    }

    public byte[] ToArray() => _buffer.WrittenSpan.ToArray();

    private void Tag(int field, int wireType) => Raw((ulong)((field << 3) | wireType));

    private void Raw(ulong value)
    {
        while (value >= 0x80)
        {
            _buffer.Write([(byte)(value | 0x80)]);
            value >>= 7;
        }

        _buffer.Write([(byte)value]);
    }
}
