using System.Text;
using System.Text.RegularExpressions;

namespace DTSKD.Core;

/// <summary>
/// Writes files so that nobody ever sees half of one: the content goes to a temporary file in the same folder
/// (<c>.&lt;name&gt;.&lt;32 hex digits&gt;.tmp</c>), is flushed to disk, and is renamed over the target. A failed write
/// removes its temporary file and leaves the target as it was.
/// </summary>
/// <remarks>
/// A process killed while writing leaves its temporary file behind; <see cref="RemoveLeftovers"/> deletes them. Call it
/// only while no other process writes into the folder (the trainer does it while it holds the folder's
/// <see cref="Training.RunLock"/>).
/// </remarks>
public static partial class AtomicFile
{
    /// <summary>Writes a file through a stream.</summary>
    /// <param name="path">The file to create or replace.</param>
    /// <param name="write">Writes the content; the stream is flushed and closed afterwards.</param>
    /// <exception cref="IOException">The file could not be written (disk full, no permission, the target is a folder...); the message names it, and the target is unchanged.</exception>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(write);
        var full = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(full)!;
        var temp = Path.Combine(directory, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            if (Directory.Exists(full))
            {
                throw new IOException("a folder of that name is in the way");
            }

            Directory.CreateDirectory(directory);
            using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                var guarded = new FileSizeGuard(file);
                write(guarded);
                guarded.FlushToDisk();
            }

            File.Move(temp, full, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"Cannot write '{path}': {Reason(ex)}. It is unchanged.", ex);
        }
        finally
        {
            TryDelete(temp);
        }
    }

    /// <summary>Writes a text file (UTF-8, no byte-order mark).</summary>
    /// <param name="path">The file to create or replace.</param>
    /// <param name="text">The content.</param>
    /// <exception cref="IOException">The file could not be written; the message names it, and the target is unchanged.</exception>
    public static void WriteAllText(string path, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        Write(path, stream =>
        {
            var bytes = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(text);
            stream.Write(bytes);
        });
    }

    /// <summary>Deletes the temporary files that interrupted writes left in a folder (this class's naming only).</summary>
    /// <param name="directory">The folder; nothing happens if it does not exist.</param>
    /// <returns>The names of the files removed.</returns>
    public static IReadOnlyList<string> RemoveLeftovers(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!Directory.Exists(directory))
        {
            return [];
        }

        var removed = new List<string>();
        foreach (var file in Directory.EnumerateFiles(directory, ".*.tmp"))
        {
            var name = Path.GetFileName(file);
            if (IsTemporaryName(name) && TryDelete(file))
            {
                removed.Add(name);
            }
        }

        return removed;
    }

    /// <summary>Whether a file name is one of this class's temporary files.</summary>
    /// <param name="fileName">A file name, without folder.</param>
    public static bool IsTemporaryName(string fileName) => fileName is not null && TemporaryName().IsMatch(fileName);

    /// <summary>The system's reason without the path it repeats (the caller names the file the user asked for).</summary>
    internal static string Reason(Exception ex)
    {
        var message = ex.Message;
        var quote = message.IndexOf(" : '", StringComparison.Ordinal);
        if (quote < 0)
        {
            quote = message.IndexOf(" '/", StringComparison.Ordinal);
        }

        return (quote > 0 ? message[..quote] : message).TrimEnd('.', ' ');
    }

    private static bool TryDelete(string file)
    {
        try
        {
            if (File.Exists(file))
            {
                File.Delete(file);
                return true;
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Best effort: a temporary file that cannot be removed now is removed by RemoveLeftovers later.
        }

        return false;
    }

    /// <summary>
    /// A file stream whose "file too large" failures are I/O errors: .NET reports EFBIG (a file past the file system's or the
    /// process's size limit) as an <see cref="ArgumentOutOfRangeException"/>, which would look like a bug in the writer.
    /// </summary>
    private sealed class FileSizeGuard(FileStream inner) : Stream
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

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            try
            {
                inner.Write(buffer);
            }
            catch (ArgumentOutOfRangeException ex)
            {
                throw TooLarge(ex);
            }
        }

        public override void Flush() => FlushToDisk(false);

        public void FlushToDisk(bool toDisk = true)
        {
            try
            {
                inner.Flush(toDisk);
            }
            catch (ArgumentOutOfRangeException ex)
            {
                throw TooLarge(ex);
            }
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        private static IOException TooLarge(Exception ex) =>
            new("File too large (more than the file system or this process's file-size limit allows)", ex);
    }

    [GeneratedRegex(@"^\..+\.[0-9a-f]{32}\.tmp$")]
    private static partial Regex TemporaryName();
}
