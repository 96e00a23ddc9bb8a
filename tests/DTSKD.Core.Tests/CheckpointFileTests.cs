using System.Security.Cryptography;
using DTSKD.Core.Training;

namespace DTSKD.Core.Tests;

/// <summary>The checkpoint container: sections of any size, streamed, verified before anything is read.</summary>
public sealed class CheckpointFileTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-ckpt-");

    public void Dispose() => _dir.Delete(recursive: true);

    /// <summary>Writes <paramref name="length"/> bytes of a pattern that depends on the position, in pieces of a few kilobytes.</summary>
    private static void Pattern(Stream stream, long length, IncrementalHash hash)
    {
        var buffer = new byte[12345];
        for (long at = 0; at < length;)
        {
            var n = (int)Math.Min(buffer.Length, length - at);
            for (var i = 0; i < n; i++)
            {
                buffer[i] = (byte)((at + i) * 2654435761L >> 13);
            }

            hash.AppendData(buffer, 0, n);
            stream.Write(buffer, 0, n);
            at += n;
        }
    }

    private static byte[] HashOf(Stream stream)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            hash.AppendData(buffer, 0, read);
        }

        return hash.GetHashAndReset();
    }

    [Fact]
    public void A_section_past_two_gigabytes_is_written_and_read_back_streaming_with_little_memory()
    {
        var path = Path.Combine(_dir.FullName, "big.ckpt");
        const long big = (2L << 30) + 12_345_678;
        using var written = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var allocated = GC.GetTotalAllocatedBytes(precise: true);

        CheckpointFile.Write(path, "{\"kind\":\"test\"}", [("small", s => s.Write("abc"u8)), ("big", s => Pattern(s, big, written)), ("after", s => s.Write("xyz"u8))]);
        var reader = CheckpointFile.Open(path);
        byte[] read;
        using (var section = reader.OpenSection("big"))
        {
            section.Length.Should().Be(big);
            read = HashOf(section);
        }

        (GC.GetTotalAllocatedBytes(precise: true) - allocated).Should().BeLessThan(64L << 20, "nothing holds a section, let alone the file, in memory");
        read.Should().Equal(written.GetHashAndReset());
        reader.HeaderJson.Should().Be("{\"kind\":\"test\"}");
        using (var after = reader.OpenSection("after"))
        {
            new StreamReader(after).ReadToEnd().Should().Be("xyz", "the sections after the big one are where they belong");
        }

        Directory.GetFiles(_dir.FullName).Should().ContainSingle();
        File.Delete(path);
    }

    [Fact]
    public void A_corrupted_byte_anywhere_is_found_before_any_section_is_read()
    {
        var path = Path.Combine(_dir.FullName, "small.ckpt");
        CheckpointFile.Write(path, "{}", [("a", s => s.Write(new byte[3 << 20])), ("b", s => s.Write("tail"u8))]);
        var bytes = File.ReadAllBytes(path);
        foreach (var at in new[] { 20, bytes.Length / 2, bytes.Length - 40, bytes.Length - 1 })
        {
            var copy = (byte[])bytes.Clone();
            copy[at] ^= 0x40;
            File.WriteAllBytes(path, copy);
            ((Action)(() => CheckpointFile.Open(path))).Should().Throw<InvalidDataException>().WithMessage("*truncated or corrupted*", $"byte {at}");
        }

        File.WriteAllBytes(path, bytes[..^100]);
        ((Action)(() => CheckpointFile.Open(path))).Should().Throw<InvalidDataException>().WithMessage("*truncated or corrupted*");
        ((Action)(() => CheckpointFile.Open(_dir.FullName))).Should().Throw<InvalidDataException>().WithMessage("*is a folder, not a checkpoint file*");
    }

    [Fact]
    public void Tensors_move_in_pieces_of_any_size_and_keep_torchsharps_layout()
    {
        var saved = TensorIO.PieceBytes;
        try
        {
            TensorIO.PieceBytes = 1000;
            manual_seed(3);
            using var source = randn(7, 333);
            using var stream = new MemoryStream();
            using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
            {
                TensorIO.Write(writer, source);
            }

            // TorchSharp's own reader reads it: the layout is Tensor.Save's.
            stream.Position = 0;
            using var theirs = zeros(7, 333);
            theirs.Load(new BinaryReader(stream));
            theirs.allclose(source, 0, 0, false).Should().BeTrue();

            stream.Position = 0;
            using var ours = TensorIO.ReadNew(new BinaryReader(stream), "test");
            ours.allclose(source, 0, 0, false).Should().BeTrue();

            stream.Position = 0;
            using var wrongShape = zeros(333, 7);
            ((Action)(() => TensorIO.Read(new BinaryReader(stream), wrongShape, "the tensor"))).Should().Throw<InvalidDataException>()
                .WithMessage("the tensor: stored Float32[7,333], expected Float32[333,7].");
        }
        finally
        {
            TensorIO.PieceBytes = saved;
        }
    }
}
