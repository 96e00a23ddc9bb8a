using System.Security.Cryptography;
using System.Text;

namespace DTSKD.Core.Training;

/// <summary>
/// The container of a checkpoint: a magic string, a format version, a JSON header, named sections and a SHA-256 of
/// everything before it. Sections are streamed in and out in chunks, so a checkpoint of any size (a dense ImageNet
/// history is tens of gigabytes) is written and read with about one chunk of memory; nothing is read from a file until
/// its whole checksum has been verified.
/// </summary>
/// <remarks>
/// Format 3: <c>DTSKDCKP</c>, int32 version, the header (a length-prefixed UTF-8 string), int32 section count, then each
/// section as its name, its bytes in chunks (int32 length &gt; 0, then that many bytes; an int32 0 ends the section) and
/// its int64 total length; then the SHA-256. Format 2 (DTSKD.Core before streaming sections) stored each section as an
/// int64 length and its bytes; it is still read.
/// </remarks>
internal static class CheckpointFile
{
    public const int FormatVersion = 3;
    private const int PreviousFormatVersion = 2;
    private const int HashSize = 32;
    private const int ChunkSize = 1 << 20;
    private static readonly byte[] Magic = "DTSKDCKP"u8.ToArray();

    /// <summary>Writes a checkpoint atomically (a temporary file in the same folder, then a rename).</summary>
    /// <exception cref="IOException">The file could not be written (disk full, no permission...); an existing file is unchanged and no temporary file is left.</exception>
    public static void Write(string path, string headerJson, IReadOnlyList<(string Name, Action<Stream> Write)> sections) =>
        AtomicFile.Write(path, file =>
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var hashing = new HashingStream(file, hash);
            using (var writer = new BinaryWriter(hashing, Encoding.UTF8, leaveOpen: true))
            {
                writer.Write(Magic);
                writer.Write(FormatVersion);
                writer.Write(headerJson);
                writer.Write(sections.Count);
                foreach (var (name, write) in sections)
                {
                    writer.Write(name);
                    writer.Flush();
                    using var chunks = new ChunkWriter(hashing);
                    write(chunks);
                    chunks.Complete();
                }
            }

            file.Write(hash.GetHashAndReset());
        });

    /// <summary>Opens a checkpoint after verifying its checksum; sections are then read one at a time, streaming.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a checkpoint, is truncated or corrupted, or has an unknown format version.</exception>
    public static Reader Open(string path)
    {
        if (Directory.Exists(path))
        {
            throw new InvalidDataException($"'{path}' is a folder, not a checkpoint file.");
        }

        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Checkpoint '{path}' does not exist.", path);
        }

        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, ChunkSize, FileOptions.SequentialScan);
        Span<byte> magic = stackalloc byte[8];
        if (file.Length < Magic.Length + HashSize || file.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false) < magic.Length || !magic.SequenceEqual(Magic))
        {
            throw new InvalidDataException($"'{path}' is not a DTSKD.Core checkpoint (it does not start with 'DTSKDCKP').");
        }

        Verify(path, file);
        file.Position = Magic.Length;
        using var reader = new BinaryReader(file, Encoding.UTF8, leaveOpen: true);
        var version = reader.ReadInt32();
        if (version is not (FormatVersion or PreviousFormatVersion))
        {
            throw new InvalidDataException($"Checkpoint '{path}' has format version {version}; this DTSKD.Core reads versions {PreviousFormatVersion} and {FormatVersion}.");
        }

        try
        {
            var header = reader.ReadString();
            var count = reader.ReadInt32();
            var sections = new Dictionary<string, (long Offset, long Length)>(StringComparer.Ordinal);
            for (var i = 0; i < count; i++)
            {
                var name = reader.ReadString();
                sections[name] = version == FormatVersion ? SkipChunks(reader) : SkipRaw(reader);
            }

            if (file.Position != file.Length - HashSize)
            {
                throw new InvalidDataException("its sections do not end where its checksum begins");
            }

            return new Reader(path, version, header, sections);
        }
        catch (Exception ex) when (ex is EndOfStreamException or InvalidDataException)
        {
            throw new InvalidDataException($"Checkpoint '{path}' has a valid checksum but an unreadable layout: {ex.Message}", ex);
        }
    }

    private static void Verify(string path, FileStream file)
    {
        file.Position = 0;
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[ChunkSize];
        var left = file.Length - HashSize;
        while (left > 0)
        {
            var read = file.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (read == 0)
            {
                throw new InvalidDataException($"Checkpoint '{path}' is truncated or corrupted (it ended while its checksum was read).");
            }

            hash.AppendData(buffer, 0, read);
            left -= read;
        }

        var stored = new byte[HashSize];
        file.ReadExactly(stored);
        if (!hash.GetHashAndReset().AsSpan().SequenceEqual(stored))
        {
            throw new InvalidDataException($"Checkpoint '{path}' is truncated or corrupted (its SHA-256 does not match its contents).");
        }
    }

    /// <summary>Steps over a format-3 section; returns where its first chunk header starts and its byte count.</summary>
    private static (long Offset, long Length) SkipChunks(BinaryReader reader)
    {
        var stream = reader.BaseStream;
        var offset = stream.Position;
        long total = 0;
        int length;
        while ((length = reader.ReadInt32()) != 0)
        {
            if (length < 0 || stream.Position + length > stream.Length)
            {
                throw new InvalidDataException($"a chunk of {length} bytes does not fit in the file");
            }

            stream.Seek(length, SeekOrigin.Current);
            total += length;
        }

        if (reader.ReadInt64() != total)
        {
            throw new InvalidDataException("a section's stated length does not match its chunks");
        }

        return (offset, total);
    }

    /// <summary>Steps over a format-2 section (int64 length, then the bytes); returns where its bytes start and their count.</summary>
    private static (long Offset, long Length) SkipRaw(BinaryReader reader)
    {
        var length = reader.ReadInt64();
        var stream = reader.BaseStream;
        if (length < 0 || stream.Position + length > stream.Length)
        {
            throw new InvalidDataException($"a section of {length} bytes does not fit in the file");
        }

        var offset = stream.Position;
        stream.Seek(length, SeekOrigin.Current);
        return (offset, length);
    }

    /// <summary>A verified checkpoint: its header, and its sections as streams.</summary>
    public sealed class Reader
    {
        private readonly Dictionary<string, (long Offset, long Length)> _sections;

        internal Reader(string path, int version, string headerJson, Dictionary<string, (long Offset, long Length)> sections)
        {
            Path = path;
            Version = version;
            HeaderJson = headerJson;
            _sections = sections;
        }

        public string Path { get; }

        public int Version { get; }

        public string HeaderJson { get; }

        public IEnumerable<string> SectionNames => _sections.Keys;

        public bool Has(string name) => _sections.ContainsKey(name);

        /// <summary>The bytes of a section as a read-only stream (the caller disposes it).</summary>
        public Stream OpenSection(string name)
        {
            if (!_sections.TryGetValue(name, out var section))
            {
                throw new InvalidDataException($"Checkpoint '{Path}' has no '{name}' section.");
            }

            var file = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read, ChunkSize);
            file.Position = section.Offset;
            return Version == FormatVersion ? new ChunkReader(file, section.Length) : new WindowReader(file, section.Length);
        }
    }

    /// <summary>Passes writes through to a stream and into a running hash.</summary>
    private sealed class HashingStream(Stream inner, IncrementalHash hash) : WriteOnlyStream
    {
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            hash.AppendData(buffer);
            inner.Write(buffer);
        }

        public override void Flush() => inner.Flush();
    }

    /// <summary>Cuts what is written into chunks of up to <see cref="ChunkSize"/> bytes, each with its length.</summary>
    private sealed class ChunkWriter(Stream inner) : WriteOnlyStream
    {
        private readonly byte[] _buffer = new byte[ChunkSize];
        private int _filled;
        private long _total;

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            while (buffer.Length > 0)
            {
                var n = Math.Min(buffer.Length, _buffer.Length - _filled);
                buffer[..n].CopyTo(_buffer.AsSpan(_filled));
                _filled += n;
                buffer = buffer[n..];
                if (_filled == _buffer.Length)
                {
                    Emit();
                }
            }
        }

        public override void Flush()
        {
        }

        /// <summary>Writes the last chunk, the end marker and the section's total length.</summary>
        public void Complete()
        {
            Emit();
            Span<byte> tail = stackalloc byte[12];
            BitConverter.TryWriteBytes(tail, 0);
            BitConverter.TryWriteBytes(tail[4..], _total);
            inner.Write(tail);
        }

        private void Emit()
        {
            if (_filled == 0)
            {
                return;
            }

            Span<byte> length = stackalloc byte[4];
            BitConverter.TryWriteBytes(length, _filled);
            inner.Write(length);
            inner.Write(_buffer, 0, _filled);
            _total += _filled;
            _filled = 0;
        }
    }

    /// <summary>Reads a format-3 section's chunks back as one stream.</summary>
    private sealed class ChunkReader(FileStream file, long length) : ReadOnlyStream(file, length)
    {
        private int _leftInChunk;

        protected override int ReadFromFile(Span<byte> buffer)
        {
            if (_leftInChunk == 0)
            {
                Span<byte> header = stackalloc byte[4];
                File.ReadExactly(header);
                _leftInChunk = BitConverter.ToInt32(header);
                if (_leftInChunk <= 0)
                {
                    throw new InvalidDataException("The checkpoint section ended before its stated length.");
                }
            }

            var read = File.Read(buffer[..Math.Min(buffer.Length, _leftInChunk)]);
            _leftInChunk -= read;
            return read;
        }
    }

    /// <summary>Reads a format-2 section: a window of the file.</summary>
    private sealed class WindowReader(FileStream file, long length) : ReadOnlyStream(file, length)
    {
        protected override int ReadFromFile(Span<byte> buffer) => File.Read(buffer);
    }

    private abstract class ReadOnlyStream(FileStream file, long length) : Stream
    {
        private long _position;

        protected FileStream File { get; } = file;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var wanted = (int)Math.Min(buffer.Length, length - _position);
            if (wanted <= 0)
            {
                return 0;
            }

            var read = ReadFromFile(buffer[..wanted]);
            if (read == 0)
            {
                throw new EndOfStreamException("The checkpoint file ended inside a section.");
            }

            _position += read;
            return read;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected abstract int ReadFromFile(Span<byte> buffer);

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                File.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    private abstract class WriteOnlyStream : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public abstract override void Write(ReadOnlySpan<byte> buffer);

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
