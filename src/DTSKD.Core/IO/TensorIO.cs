using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// Tensors to and from streams in TorchSharp's own layout (<c>Tensor.Save</c>: LEB128 dtype, rank and sizes, then the
/// raw little-endian bytes), moved in large pieces: TorchSharp copies through a 1 KB buffer, which for a
/// many-gigabyte history table means millions of calls. Any size works, past 2^31 bytes included.
/// </summary>
internal static class TensorIO
{
    /// <summary>Bytes moved per piece (and the most a piece costs in extra memory for a device tensor).</summary>
    internal static long PieceBytes { get; set; } = 64L << 20;

    /// <summary>Writes a tensor (any device: non-CPU tensors are copied to the host a piece at a time).</summary>
    public static void Write(BinaryWriter writer, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(tensor);
        Encode(writer, (long)tensor.dtype);
        Encode(writer, tensor.shape.Length);
        foreach (var size in tensor.shape)
        {
            Encode(writer, size);
        }

        writer.Flush();
        using var scope = NewDisposeScope();
        var flat = tensor.detach().contiguous().view(-1);
        var step = Math.Max(1, PieceBytes / tensor.ElementSize);
        for (long start = 0; start < flat.shape[0]; start += step)
        {
            using var piece = flat.narrow(0, start, Math.Min(step, flat.shape[0] - start));
            using var host = piece.device_type == TorchSharp.DeviceType.CPU ? null : piece.cpu();
            writer.BaseStream.Write((host ?? piece).bytes);
        }
    }

    /// <summary>Reads what <see cref="Write"/> wrote into an existing tensor of the same dtype and shape.</summary>
    /// <exception cref="InvalidDataException">The stored tensor has another dtype or shape; the message says which.</exception>
    /// <exception cref="EndOfStreamException">The stream ends inside the tensor.</exception>
    public static void Read(BinaryReader reader, Tensor target, string what)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(target);
        var (dtype, shape) = ReadHeader(reader, what);
        if (dtype != target.dtype || !shape.SequenceEqual(target.shape))
        {
            throw new InvalidDataException(
                $"{what}: stored {dtype}[{string.Join(",", shape)}], expected {target.dtype}[{string.Join(",", target.shape)}].");
        }

        ReadData(reader, target, what);
    }

    /// <summary>Reads what <see cref="Write"/> wrote into a new CPU tensor of the stored dtype and shape (the caller owns it).</summary>
    /// <exception cref="InvalidDataException">The stored header is not a tensor's.</exception>
    /// <exception cref="EndOfStreamException">The stream ends inside the tensor.</exception>
    public static Tensor ReadNew(BinaryReader reader, string what)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var (dtype, shape) = ReadHeader(reader, what);
        if (!Enum.IsDefined(dtype) || shape.Any(s => s < 0))
        {
            throw new InvalidDataException($"{what}: the stored header ({(int)dtype}, [{string.Join(",", shape)}]) is not a tensor's.");
        }

        var tensor = empty(shape, dtype).DetachFromDisposeScope();
        try
        {
            ReadData(reader, tensor, what);
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    private static (ScalarType DType, long[] Shape) ReadHeader(BinaryReader reader, string what)
    {
        var dtype = (ScalarType)Decode(reader);
        var rank = Decode(reader);
        if (rank is < 0 or > 64)
        {
            throw new InvalidDataException($"{what}: a stored tensor of rank {rank} is not a tensor.");
        }

        var shape = new long[rank];
        for (var i = 0; i < rank; i++)
        {
            shape[i] = Decode(reader);
        }

        return (dtype, shape);
    }

    private static void ReadData(BinaryReader reader, Tensor target, string what)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        if (!target.is_contiguous())
        {
            throw new ArgumentException($"{what}: the tensor to read into must be contiguous.", nameof(target));
        }

        // Host tensors are filled in place; device tensors through a host piece at a time.
        var onHost = target.device_type == TorchSharp.DeviceType.CPU;
        var flat = target.view(-1);
        var step = Math.Max(1, PieceBytes / target.ElementSize);
        var total = target.numel();
        for (long start = 0; start < total; start += step)
        {
            var n = Math.Min(step, total - start);
            using var slot = flat.narrow(0, start, n);
            using var piece = onHost ? null : empty([n], target.dtype);
            reader.BaseStream.ReadExactly((piece ?? slot).bytes);
            if (piece is not null)
            {
                slot.copy_(piece);
            }
        }
    }

    private static void Encode(BinaryWriter writer, long value)
    {
        var v = (ulong)value;
        do
        {
            var b = (byte)(v & 0x7F);
            v >>= 7;
            writer.Write(v != 0 ? (byte)(b | 0x80) : b);
        }
        while (v != 0);
    }

    private static long Decode(BinaryReader reader)
    {
        ulong result = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            var b = reader.ReadByte();
            result |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return (long)result;
            }
        }

        throw new InvalidDataException("A stored tensor header is malformed.");
    }
}
