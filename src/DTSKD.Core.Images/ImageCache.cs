using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using DTSKD.Core.Deployment;

namespace DTSKD.Core.Images;

/// <summary>What one pass over a folder's images found, kept beside the cache under the folder's key.</summary>
/// <param name="Root">The folder.</param>
/// <param name="Family">What the folder was read as (folder, size, channels, split): a newer pass of the same family replaces an older one.</param>
/// <param name="StoredSize">The side images are stored at.</param>
/// <param name="Channels">Channels per image.</param>
/// <param name="Train">Good training images.</param>
/// <param name="Test">Good test images.</param>
/// <param name="Mean">Per-channel mean of the training images' pixels, scaled to [0, 1].</param>
/// <param name="Std">Per-channel standard deviation of the same.</param>
/// <param name="Bad">The images that could not be used, in folder order, each with its reason.</param>
/// <param name="Pixels">The cache file's name (beside this record), or null when the pass only verified.</param>
internal sealed record ImagePass(string Root, string Family, int StoredSize, int Channels, int Train, int Test, double[] Mean, double[] Std, List<BadImage> Bad, string? Pixels);

/// <summary>
/// Decodes every image of a folder once, in parallel: into a uint8 cache file (rows of C x S x S bytes, training images
/// first, in folder order) when caching, or only to verify them when streaming; measures the training images' mean and
/// standard deviation on the way. The result is kept under a key of the file list, sizes, modification times and the
/// options, so an unchanged folder is never decoded twice and a changed one is always decoded anew, never mixed.
/// </summary>
internal static class ImageCache
{
    private const string Version = "DTSKD.ImageCache/1";

    /// <summary>The default cache folder: <c>$XDG_CACHE_HOME/dtskd/images</c>, else <c>~/.cache/dtskd/images</c>.</summary>
    public static string DefaultDirectory =>
        Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "dtskd", "images");

    /// <summary>The key of a scan read with these options: every entry's path, size, time, class and split.</summary>
    public static (string Key, string Family) Keys(ImageFolderScan scan, ImageFolderOptions options)
    {
        var family = new StringBuilder(string.Create(CultureInfo.InvariantCulture, $"{Version}|{Path.GetFullPath(scan.Root)}|{options.StoredSize}|{options.Channels}|{scan.Layout}|{options.HoldOutFraction}|{options.Seed}|{options.MaxPixels}"));
        var content = new StringBuilder(family.ToString());
        foreach (var (split, entries) in new[] { ("train", scan.Train), ("test", scan.Test) })
        {
            foreach (var e in entries)
            {
                content.Append(CultureInfo.InvariantCulture, $"\n{split}|{e.RelativePath}|{e.Size}|{e.ModifiedTicks}|{e.Label}");
            }
        }

        static string Hash(StringBuilder text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..32];
        return (Hash(content), Hash(family));
    }

    /// <summary>
    /// Makes sure the cache folder can be written, and removes the pixel files that writers no longer alive left behind (a
    /// pass killed while decoding): each writer holds its temporary file locked while it lives, so one that can be locked
    /// has no writer.
    /// </summary>
    /// <returns>The stale temporary files removed.</returns>
    /// <exception cref="ImageFolderException">The folder cannot be created or written; the message names it and the setting to change.</exception>
    public static IReadOnlyList<string> Prepare(string directory)
    {
        try
        {
            Directory.CreateDirectory(directory);
            using (File.Create(Path.Combine(directory, $".write-check-{Guid.NewGuid():N}"), 1, FileOptions.DeleteOnClose))
            {
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ImageFolderException($"The image cache '{directory}' cannot be written ({WhyNot(directory, ex)}): give a writable folder (ImageFolderOptions.CacheDirectory, the sample's --image-cache).", ex);
        }

        var removed = new List<string>();
        foreach (var temp in Directory.EnumerateFiles(directory, ".*.pixels.*.tmp"))
        {
            try
            {
                using (new FileStream(temp, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
                {
                }

                File.Delete(temp);
                removed.Add(temp);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Locked: a writer is decoding into it now.
            }
        }

        return removed;
    }

    /// <summary>Why a folder cannot be made: a file where a folder of its path should be, said plainly; else the OS's words.</summary>
    private static string WhyNot(string directory, Exception error)
    {
        for (var path = Path.GetFullPath(directory); !string.IsNullOrEmpty(path); path = Path.GetDirectoryName(path))
        {
            if (File.Exists(path))
            {
                return $"'{path}' is a file, not a folder";
            }

            if (Directory.Exists(path))
            {
                break;
            }
        }

        return error.Message.TrimEnd('.');
    }

    /// <summary>
    /// The pass of an earlier run for this key, if it is complete (with its pixels when <paramref name="needPixels"/>) and
    /// fits <paramref name="scan"/>: its bad images, recorded by their path inside the folder, are named as this scan
    /// reaches them (a run started from another directory, or given the folder by another path, reads the same pass).
    /// </summary>
    public static ImagePass? Find(string directory, string key, bool needPixels, long rowBytes, ImageFolderScan scan)
    {
        var json = Path.Combine(directory, key + ".json");
        if (!File.Exists(json))
        {
            return null;
        }

        try
        {
            var pass = JsonSerializer.Deserialize<ImagePass>(File.ReadAllText(json));
            if (pass is null || (needPixels && (pass.Pixels is null || !File.Exists(Path.Combine(directory, pass.Pixels))
                                                || new FileInfo(Path.Combine(directory, pass.Pixels)).Length != (pass.Train + pass.Test) * rowBytes)))
            {
                return null;
            }

            var entries = scan.Train.Concat(scan.Test).ToList();
            var byPath = entries.Select((e, i) => (e.RelativePath, Index: i)).ToDictionary(p => p.RelativePath, p => p.Index, StringComparer.Ordinal);
            var bad = new List<(int Index, BadImage Image)>();
            foreach (var b in pass.Bad)
            {
                if (!byPath.TryGetValue(b.Path, out var index))
                {
                    return null; // not a file of this scan (or a pass written before bad images were recorded by their path inside the folder)
                }

                bad.Add((index, new BadImage(entries[index].Path, b.Reason)));
            }

            var badTrain = bad.Count(b => b.Index < scan.Train.Count);
            return scan.Train.Count - badTrain != pass.Train || scan.Test.Count - (bad.Count - badTrain) != pass.Test
                ? null
                : pass with { Bad = [.. bad.OrderBy(b => b.Index).Select(b => b.Image)] };
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Decodes every entry (training ones first) on <see cref="ImageFolderOptions.Workers"/> threads, writing the pixels when
    /// <paramref name="writePixels"/>; bad images are collected, not thrown. With bad images left out, the file holds the
    /// good ones only, in order. Nothing is left behind on failure or cancellation.
    /// </summary>
    public static ImagePass Build(
        string directory, string key, string family, ImageFolderScan scan, ImageFolderOptions options, bool writePixels,
        IProgress<(int Done, int Total)>? progress, CancellationToken cancellationToken)
    {
        var entries = scan.Train.Concat(scan.Test).ToArray();
        var (size, channels) = (options.StoredSize, options.Channels);
        var rowBytes = (long)channels * size * size;
        var bad = new BadImage?[entries.Length];
        var sums = new double[channels];
        var squares = new double[channels];
        var gate = new Lock();
        var done = 0;
        var temp = Path.Combine(directory, $".{key}.pixels.{Guid.NewGuid():N}.tmp");
        SafeFileHandle? file = null;
        try
        {
            if (writePixels)
            {
                file = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.None, entries.Length * rowBytes);
            }

            Parallel.For(0, entries.Length, new ParallelOptions { MaxDegreeOfParallelism = options.Workers, CancellationToken = cancellationToken },
                () => new byte[rowBytes],
                (i, _, buffer) =>
                {
                    try
                    {
                        ImageDecoder.DecodeFile(entries[i].Path, size, channels, buffer, options.MaxPixels);
                        if (file is not null)
                        {
                            RandomAccess.Write(file, buffer, i * rowBytes);
                        }

                        if (i < scan.Train.Count)
                        {
                            Accumulate(buffer, size * size, channels, sums, squares, gate);
                        }
                    }
                    catch (ImageDecodeException ex)
                    {
                        bad[i] = new BadImage(entries[i].Path, ex.Reason);
                    }

                    var finished = Interlocked.Increment(ref done);
                    if (finished % 256 == 0 || finished == entries.Length)
                    {
                        progress?.Report((finished, entries.Length));
                    }

                    return buffer;
                },
                _ => { });

            var badList = bad.Where(b => b is not null).Select(b => b!).ToList();
            var goodTrain = scan.Train.Count - bad.Take(scan.Train.Count).Count(b => b is not null);
            var goodTest = entries.Length - scan.Train.Count - bad.Skip(scan.Train.Count).Count(b => b is not null);
            var pixels = (long)goodTrain * size * size;
            var mean = sums.Select(s => pixels == 0 ? 0 : s / pixels / 255.0).ToArray();
            var std = squares.Select((q, c) => pixels == 0 ? 1 : Math.Sqrt(Math.Max(1e-12, (q / pixels / (255.0 * 255.0)) - (mean[c] * mean[c])))).ToArray();
            string? pixelsName = null;
            if (file is not null)
            {
                if (badList.Count > 0)
                {
                    Compact(file, bad, rowBytes);
                }

                RandomAccess.FlushToDisk(file);
                pixelsName = key + ".pixels";

                // Renamed while still locked where the OS allows it, so that no other pass takes it for a dead writer's.
                if (!OperatingSystem.IsWindows())
                {
                    File.Move(temp, Path.Combine(directory, pixelsName), overwrite: true);
                }

                file.Dispose();
                file = null;
                if (OperatingSystem.IsWindows())
                {
                    File.Move(temp, Path.Combine(directory, pixelsName), overwrite: true);
                }
            }

            var pass = new ImagePass(Path.GetFullPath(scan.Root), family, size, channels, goodTrain, goodTest, mean, std, badList, pixelsName);

            // Recorded by their path inside the folder: the path this scan was given may be relative to this directory only.
            var inside = bad.Select((b, i) => b is null ? null : new BadImage(entries[i].RelativePath, b.Reason)).Where(b => b is not null).Select(b => b!).ToList();
            AtomicFile.WriteAllText(Path.Combine(directory, key + ".json"), JsonSerializer.Serialize(pass with { Bad = inside }));
            RemoveOlder(directory, key, family);
            return pass;
        }
        finally
        {
            file?.Dispose();
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }

    /// <summary>Adds the image's per-channel pixel sums and squares (as integers first: exact within an image).</summary>
    private static void Accumulate(byte[] image, int plane, int channels, double[] sums, double[] squares, Lock gate)
    {
        Span<long> s = stackalloc long[channels];
        Span<long> q = stackalloc long[channels];
        for (var c = 0; c < channels; c++)
        {
            foreach (var v in image.AsSpan(c * plane, plane))
            {
                s[c] += v;
                q[c] += v * v;
            }
        }

        lock (gate)
        {
            for (var c = 0; c < channels; c++)
            {
                sums[c] += s[c];
                squares[c] += q[c];
            }
        }
    }

    /// <summary>Moves the good rows to the front, in order, and cuts the file after them.</summary>
    private static void Compact(SafeFileHandle file, BadImage?[] bad, long rowBytes)
    {
        var buffer = ArrayPool<byte>.Shared.Rent((int)rowBytes);
        try
        {
            long written = 0;
            for (var i = 0; i < bad.Length; i++)
            {
                if (bad[i] is not null)
                {
                    continue;
                }

                if (written != i)
                {
                    RandomAccess.Read(file, buffer.AsSpan(0, (int)rowBytes), i * rowBytes);
                    RandomAccess.Write(file, buffer.AsSpan(0, (int)rowBytes), written * rowBytes);
                }

                written++;
            }

            RandomAccess.SetLength(file, written * rowBytes);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Removes the caches of earlier passes over the same folder with the same options (the folder has changed since).</summary>
    private static void RemoveOlder(string directory, string key, string family)
    {
        foreach (var json in Directory.EnumerateFiles(directory, "*.json"))
        {
            var other = Path.GetFileNameWithoutExtension(json);
            if (other == key)
            {
                continue;
            }

            try
            {
                var pass = JsonSerializer.Deserialize<ImagePass>(File.ReadAllText(json));
                if (pass?.Family == family)
                {
                    if (pass.Pixels is { } pixels)
                    {
                        File.Delete(Path.Combine(directory, pixels));
                    }

                    File.Delete(json);
                }
            }
            catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
            {
                // Not ours, or in use: left alone.
            }
        }
    }
}
