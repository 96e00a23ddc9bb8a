using System.Security.Cryptography;
using System.Text;

namespace DTSKD.Core.Training;

/// <summary>
/// The container of a checkpoint: a magic string, a format version, a JSON header, named binary sections and a
/// SHA-256 of everything before it. Written to a temporary file and renamed into place; verified whole before
/// anything is read from it.
/// </summary>
internal static class CheckpointFile
{
    public const int FormatVersion = 2;
    private static readonly byte[] Magic = "DTSKDCKP"u8.ToArray();

    public static void Write(string path, string headerJson, IReadOnlyList<(string Name, Action<Stream> Write)> sections)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
            {
                var hashing = new HashingStream(file, hash);
                using (var writer = new BinaryWriter(hashing, Encoding.UTF8, leaveOpen: true))
                {
                    writer.Write(Magic);
                    writer.Write(FormatVersion);
                    writer.Write(headerJson);
                    writer.Write(sections.Count);
                    foreach (var (name, write) in sections)
                    {
                        using var buffer = new MemoryStream();
                        write(buffer);
                        writer.Write(name);
                        writer.Write(buffer.Length);
                        writer.Flush();
                        buffer.Position = 0;
                        buffer.CopyTo(hashing);
                    }
                }

                file.Write(hash.GetHashAndReset());
                file.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }

    public static (string HeaderJson, Dictionary<string, byte[]> Sections) Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Checkpoint '{path}' does not exist.", path);
        }

        var bytes = File.ReadAllBytes(path);
        const int hashSize = 32;
        if (bytes.Length < Magic.Length + hashSize || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
        {
            throw new InvalidDataException($"'{path}' is not a DTSKD.Core checkpoint (it does not start with 'DTSKDCKP').");
        }

        var body = bytes.AsSpan(0, bytes.Length - hashSize);
        if (!SHA256.HashData(body).AsSpan().SequenceEqual(bytes.AsSpan(bytes.Length - hashSize)))
        {
            throw new InvalidDataException($"Checkpoint '{path}' is truncated or corrupted (its SHA-256 does not match its contents).");
        }

        using var reader = new BinaryReader(new MemoryStream(bytes, 0, body.Length, writable: false), Encoding.UTF8);
        reader.ReadBytes(Magic.Length);
        var version = reader.ReadInt32();
        if (version != FormatVersion)
        {
            throw new InvalidDataException($"Checkpoint '{path}' has format version {version}; this DTSKD.Core reads version {FormatVersion}.");
        }

        var header = reader.ReadString();
        var count = reader.ReadInt32();
        var sections = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        for (var i = 0; i < count; i++)
        {
            var name = reader.ReadString();
            var length = reader.ReadInt64();
            sections[name] = reader.ReadBytes(checked((int)length));
        }

        return (header, sections);
    }

    /// <summary>Passes writes through to a stream and into a running hash.</summary>
    private sealed class HashingStream(Stream inner, IncrementalHash hash) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => inner.Length;

        public override long Position
        {
            get => inner.Position;
            set => throw new NotSupportedException();
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
            hash.AppendData(buffer, offset, count);
            inner.Write(buffer, offset, count);
        }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
