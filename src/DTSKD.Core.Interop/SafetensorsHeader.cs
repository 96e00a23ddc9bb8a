using System.Buffers.Binary;
using System.Text.Json;

namespace DTSKD.Core.Interop;

/// <summary>
/// Checks a <c>.safetensors</c> file's header against the file before any tensor is allocated: the header's length inside
/// the file, every tensor's dtype known, its shape non-negative, its bytes what dtype and shape make them and inside the
/// data that follows the header.
/// </summary>
internal static class SafetensorsHeader
{
    private const long MaxHeader = 100_000_000;

    private static readonly Dictionary<string, int> Sizes = new(StringComparer.Ordinal)
    {
        ["F64"] = 8, ["F32"] = 4, ["F16"] = 2, ["BF16"] = 2, ["I64"] = 8, ["I32"] = 4, ["I16"] = 2, ["I8"] = 1, ["U8"] = 1, ["BOOL"] = 1,
    };

    /// <exception cref="InvalidDataException">The header does not fit the file; the message names the tensor and what it claims.</exception>
    public static void Check(string path)
    {
        using var stream = File.OpenRead(path);
        var length = stream.Length;
        Span<byte> prefix = stackalloc byte[8];
        if (stream.ReadAtLeast(prefix, 8, throwOnEndOfStream: false) < 8)
        {
            throw new InvalidDataException($"'{path}' is not a safetensors file: it is {length} bytes, shorter than the 8-byte header length.");
        }

        var header = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (header > (ulong)(length - 8) || header > MaxHeader)
        {
            throw new InvalidDataException($"'{path}' is not a safetensors file: its header claims {header} bytes, but the file has {length - 8} after the length.");
        }

        var json = new byte[header];
        stream.ReadExactly(json);
        var data = length - 8 - (long)header;
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"'{path}' is not a safetensors file: its header is not JSON ({ex.Message}).", ex);
        }

        using (document)
        {
            foreach (var entry in document.RootElement.EnumerateObject().Where(e => e.Name != "__metadata__"))
            {
                var tensor = entry.Value;
                var dtype = tensor.TryGetProperty("dtype", out var d) ? d.GetString() ?? "" : "";
                if (!Sizes.TryGetValue(dtype, out var size))
                {
                    throw new InvalidDataException($"'{path}': tensor '{entry.Name}' has dtype '{dtype}'; expected one of {string.Join(", ", Sizes.Keys)}.");
                }

                long count = 1;
                var shape = tensor.TryGetProperty("shape", out var s) && s.ValueKind == JsonValueKind.Array ? s.EnumerateArray().ToList() : null;
                foreach (var dim in shape ?? throw new InvalidDataException($"'{path}': tensor '{entry.Name}' has no shape."))
                {
                    if (!dim.TryGetInt64(out var v) || v < 0 || (v > 0 && count > long.MaxValue / size / v))
                    {
                        throw new InvalidDataException($"'{path}': tensor '{entry.Name}' has the shape {s}, which no tensor of this file can hold.");
                    }

                    count *= v;
                }

                var offsets = tensor.TryGetProperty("data_offsets", out var o) && o.ValueKind == JsonValueKind.Array ? o.EnumerateArray().Select(x => x.TryGetInt64(out var v) ? v : -1).ToArray() : [];
                if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > data)
                {
                    throw new InvalidDataException($"'{path}': tensor '{entry.Name}' claims the bytes {o} of a data section of {data}.");
                }

                if (offsets[1] - offsets[0] != count * size)
                {
                    throw new InvalidDataException($"'{path}': tensor '{entry.Name}' of shape {s} and dtype {dtype} needs {count * size} bytes; its offsets {o} give {offsets[1] - offsets[0]}.");
                }
            }
        }
    }
}
