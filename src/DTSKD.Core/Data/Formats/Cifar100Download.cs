using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;

namespace DTSKD.Core.Data;

/// <summary>
/// Fetches CIFAR-100's binary archive from its authors' address, checks its size and MD5, and extracts it with
/// .NET's own gzip and tar readers. Nothing half-written is ever left at the final paths: the archive is
/// downloaded to a temporary name and extracted into a temporary folder, each renamed into place only when
/// complete and verified.
/// </summary>
internal static class Cifar100Download
{
    /// <summary>The archive's official address.</summary>
    public static Uri OfficialSource { get; } = new("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz");

    /// <summary>The archive's size in bytes, as published.</summary>
    public const long ArchiveSize = 168_513_733;

    /// <summary>The archive's MD5, as published by the dataset's authors.</summary>
    public const string ArchiveMd5 = "03b5dce01913d631647c71ecec9e9cb8";

    /// <summary>The archive's file name.</summary>
    public const string ArchiveName = "cifar-100-binary.tar.gz";

    /// <summary>The folder the archive extracts to.</summary>
    public const string FolderName = "cifar-100-binary";

    /// <summary>True when <paramref name="dataPath"/> already holds an extracted CIFAR-100 (<c>cifar-100-binary/train.bin</c> and <c>test.bin</c>).</summary>
    /// <param name="dataPath">The data folder.</param>
    public static bool IsPresent(string dataPath) =>
        File.Exists(Path.Combine(dataPath, FolderName, "train.bin")) && File.Exists(Path.Combine(dataPath, FolderName, "test.bin"));

    /// <summary>
    /// Makes sure <c>&lt;dataPath&gt;/cifar-100-binary</c> holds the data set: uses it as it is when present, else
    /// downloads (or reuses an already downloaded, verified archive) and extracts.
    /// </summary>
    /// <param name="dataPath">The data folder (created if missing).</param>
    /// <param name="progress">Receives (bytes so far, total bytes) while downloading.</param>
    /// <param name="source">Where to fetch from: an http(s) address, or a <c>file:</c> URI of a local copy. Default: <see cref="OfficialSource"/>.</param>
    /// <param name="expectedSize">The archive's expected size (default: the published size).</param>
    /// <param name="expectedMd5">The archive's expected MD5 in hex (default: the published one).</param>
    /// <param name="cancellationToken">Cancels the download; partial files are removed.</param>
    /// <returns>The folder holding <c>train.bin</c> and <c>test.bin</c>.</returns>
    /// <exception cref="InvalidDataException">The archive's size or MD5 is wrong, or it is not a complete tar.gz with both files.</exception>
    public static async Task<string> EnsureAsync(
        string dataPath,
        IProgress<(long Bytes, long Total)>? progress = null,
        Uri? source = null,
        long expectedSize = ArchiveSize,
        string expectedMd5 = ArchiveMd5,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dataPath);
        var folder = Path.Combine(dataPath, FolderName);
        if (IsPresent(dataPath))
        {
            return folder;
        }

        var created = !Directory.Exists(dataPath);
        Directory.CreateDirectory(dataPath);
        try
        {
            var archive = Path.Combine(dataPath, ArchiveName);
            if (!File.Exists(archive) || !await MatchesAsync(archive, expectedSize, expectedMd5, cancellationToken).ConfigureAwait(false))
            {
                await DownloadAsync(source ?? OfficialSource, archive, expectedSize, expectedMd5, progress, cancellationToken).ConfigureAwait(false);
            }

            try
            {
                Extract(archive, dataPath);
            }
            catch (InvalidDataException)
            {
                // An archive that does not extract is of no use to a later attempt either.
                File.Delete(archive);
                throw;
            }
        }
        catch when (created && !Directory.EnumerateFileSystemEntries(dataPath).Any())
        {
            // A failed first download leaves no empty data folder behind.
            Directory.Delete(dataPath);
            throw;
        }

        return folder;
    }

    private static async Task DownloadAsync(Uri source, string archive, long expectedSize, string expectedMd5, IProgress<(long, long)>? progress, CancellationToken ct)
    {
        var partial = archive + ".partial";
        try
        {
            await using (var output = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                using var md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
                using var http = source.IsFile ? null : new HttpClient();
                await using var input = source.IsFile
                    ? File.OpenRead(source.LocalPath)
                    : await http!.GetStreamAsync(source, ct).ConfigureAwait(false);
                var buffer = new byte[1 << 20];
                long total = 0;
                int read;
                while ((read = await input.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                {
                    md5.AppendData(buffer, 0, read);
                    await output.WriteAsync(buffer.AsMemory(0, read), ct).ConfigureAwait(false);
                    total += read;
                    progress?.Report((total, expectedSize));
                }

                var hash = Convert.ToHexStringLower(md5.GetHashAndReset());
                if (total != expectedSize || hash != expectedMd5)
                {
                    throw new InvalidDataException(
                        $"The archive from '{source}' is {total} bytes with MD5 {hash}; expected {expectedSize} bytes with MD5 {expectedMd5}. " +
                        "Nothing was kept; try again, or download it yourself into the data folder.");
                }
            }

            File.Move(partial, archive, overwrite: true);
        }
        finally
        {
            if (File.Exists(partial))
            {
                File.Delete(partial);
            }
        }
    }

    private static async Task<bool> MatchesAsync(string file, long expectedSize, string expectedMd5, CancellationToken ct) =>
        await WhyNotTheArchiveAsync(file, ct, expectedSize, expectedMd5).ConfigureAwait(false) is null;

    /// <summary>Null when <paramref name="file"/> is the archive (its published size and MD5); otherwise what is wrong with it, or null when there is no such file.</summary>
    internal static async Task<string?> WhyNotTheArchiveAsync(string file, CancellationToken ct, long expectedSize = ArchiveSize, string expectedMd5 = ArchiveMd5)
    {
        if (!File.Exists(file))
        {
            return null;
        }

        var length = new FileInfo(file).Length;
        if (length != expectedSize)
        {
            return $"{length:N0} bytes, expected {expectedSize:N0}";
        }

        await using var stream = File.OpenRead(file);
#pragma warning disable CA5351 // The dataset's authors publish an MD5: it checks integrity, not authenticity.
        var hash = Convert.ToHexStringLower(await MD5.HashDataAsync(stream, ct).ConfigureAwait(false));
#pragma warning restore CA5351
        return hash == expectedMd5 ? null : $"MD5 {hash}, expected {expectedMd5}";
    }

    private static void Extract(string archive, string dataPath)
    {
        var temp = Path.Combine(dataPath, $".{FolderName}.{Guid.NewGuid():N}.extracting");
        try
        {
            Directory.CreateDirectory(temp);
            try
            {
                using var file = File.OpenRead(archive);
                using var gzip = new GZipStream(file, CompressionMode.Decompress);
                TarFile.ExtractToDirectory(gzip, temp, overwriteFiles: false);
            }
            catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or FormatException or IOException)
            {
                throw new InvalidDataException($"'{archive}' is not a complete tar.gz archive ({ex.Message}). Delete it and download again.", ex);
            }

            var extracted = Path.Combine(temp, FolderName);
            foreach (var name in new[] { "train.bin", "test.bin" })
            {
                var path = Path.Combine(extracted, name);
                if (!File.Exists(path) || new FileInfo(path).Length == 0 || new FileInfo(path).Length % CifarReader.Cifar100RecordSize != 0)
                {
                    throw new InvalidDataException(
                        $"'{archive}' does not contain {FolderName}/{name} as whole {CifarReader.Cifar100RecordSize}-byte records; it is not the CIFAR-100 binary archive.");
                }
            }

            Directory.Move(extracted, Path.Combine(dataPath, FolderName));
        }
        finally
        {
            if (Directory.Exists(temp))
            {
                Directory.Delete(temp, recursive: true);
            }
        }
    }
}
