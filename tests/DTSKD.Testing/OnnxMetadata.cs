using System.Text;

namespace DTSKD.Testing;

/// <summary>
/// Rewrites the metadata of an ONNX file (ModelProto field 14, <c>metadata_props</c>), leaving the graph as it is: the
/// exporter refuses bad metadata, so the tests make the files a careless tool or a hand edit would.
/// </summary>
public static class OnnxMetadata
{
    private const int MetadataField = 14;

    /// <summary>Writes a copy of <paramref name="source"/> to <paramref name="target"/> with its metadata changed by <paramref name="edit"/>.</summary>
    public static void Rewrite(string source, string target, Action<Dictionary<string, string>> edit)
    {
        var bytes = File.ReadAllBytes(source);
        var kept = new MemoryStream();
        var metadata = new Dictionary<string, string>();
        var at = 0;
        while (at < bytes.Length)
        {
            var start = at;
            var tag = Varint(bytes, ref at);
            var (field, wire) = ((int)(tag >> 3), (int)(tag & 7));
            var end = wire switch
            {
                0 => VarintEnd(bytes, at),
                1 => at + 8,
                2 => (int)Varint(bytes, ref at) + at,
                5 => at + 4,
                _ => throw new InvalidDataException($"wire type {wire} at byte {start}"),
            };
            if (field == MetadataField && wire == 2)
            {
                var (key, value) = Entry(bytes, at, end);
                metadata[key] = value;
            }
            else
            {
                kept.Write(bytes, start, end - start);
            }

            at = end;
        }

        edit(metadata);
        foreach (var (key, value) in metadata)
        {
            var entry = new MemoryStream();
            Field(entry, 1, Encoding.UTF8.GetBytes(key));
            Field(entry, 2, Encoding.UTF8.GetBytes(value));
            Field(kept, MetadataField, entry.ToArray());
        }

        File.WriteAllBytes(target, kept.ToArray());
    }

    private static int VarintEnd(byte[] bytes, int at)
    {
        Varint(bytes, ref at);
        return at;
    }

    private static (string Key, string Value) Entry(byte[] bytes, int at, int end)
    {
        var (key, value) = ("", "");
        while (at < end)
        {
            var tag = Varint(bytes, ref at);
            var length = (int)Varint(bytes, ref at);
            var text = Encoding.UTF8.GetString(bytes, at, length);
            if (tag >> 3 == 1)
            {
                key = text;
            }
            else
            {
                value = text;
            }

            at += length;
        }

        return (key, value);
    }

    private static ulong Varint(byte[] bytes, ref int at)
    {
        ulong value = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = bytes[at++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }
    }

    private static void Field(Stream stream, int field, byte[] payload)
    {
        WriteVarint(stream, ((ulong)field << 3) | 2);
        WriteVarint(stream, (ulong)payload.Length);
        stream.Write(payload);
    }

    private static void WriteVarint(Stream stream, ulong value)
    {
        while (value >= 0x80)
        {
            stream.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }

        stream.WriteByte((byte)value);
    }
}
