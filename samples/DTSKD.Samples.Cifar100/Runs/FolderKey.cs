using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using DTSKD.Core;
using DTSKD.Core.Images;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// A folder run's data, as it was: every file the splits read (split, class, size, modification time, path relative to
/// the folder) in <c>data-files.tsv</c> of the run folder, and its hash in config.json. The historical teacher's rows and
/// the held-out split belong to those files; a resume or an evaluation on a folder that no longer holds them is refused
/// with what changed. Relative paths, so a folder moved whole (same files, same times) is still the run's.
/// </summary>
internal static class FolderKey
{
    /// <summary>The file in the run folder.</summary>
    public const string FileName = "data-files.tsv";

    private const int Shown = 3;

    /// <summary>Writes the list into the run folder (atomically) and returns its key.</summary>
    public static string Write(string runFolder, IReadOnlyList<ImageFolderFile> files)
    {
        var text = Text(files);
        AtomicFile.WriteAllText(Path.Combine(runFolder, FileName), text);
        return Key(text);
    }

    /// <summary>The key of a file list, as <see cref="Write"/> records it (and every checkpoint, as the trainer's <c>DataKey</c>).</summary>
    public static string Of(IReadOnlyList<ImageFolderFile> files) => Key(Text(files));

    /// <summary>Null when the folder still holds the run's files (or the run predates the list); else what changed, in one line.</summary>
    public static string? Changes(string runFolder, IReadOnlyList<ImageFolderFile> files)
    {
        var recorded = Path.Combine(runFolder, FileName);
        if (!File.Exists(recorded))
        {
            return null;
        }

        var then = Parse(File.ReadAllLines(recorded));
        var now = Parse(Text(files).Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var added = now.Keys.Where(k => !then.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var removed = then.Keys.Where(k => !now.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var changed = then.Keys.Where(k => now.TryGetValue(k, out var v) && v != then[k]).Order(StringComparer.Ordinal).ToList();
        if (added.Count + removed.Count + changed.Count == 0)
        {
            return null;
        }

        var first = added.Select(f => $"'{f}' added").Concat(removed.Select(f => $"'{f}' removed")).Concat(changed.Select(f => $"'{f}' changed")).Take(Shown);
        return string.Create(CultureInfo.InvariantCulture, $"{added.Count} added, {removed.Count} removed, {changed.Count} changed (size, time, class or split) since the run read it; first: {string.Join(", ", first)}");
    }

    private static string Text(IReadOnlyList<ImageFolderFile> files)
    {
        var text = new StringBuilder();
        foreach (var f in files)
        {
            text.Append(CultureInfo.InvariantCulture, $"{f.Split}\t{f.ClassName}\t{f.Size}\t{f.ModifiedUtc.Ticks}\t{f.RelativePath}\n");
        }

        return text.ToString();
    }

    private static string Key(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..32];

    /// <summary>Path → the rest of its line.</summary>
    private static Dictionary<string, string> Parse(IEnumerable<string> lines) =>
        lines.Where(l => l.Length > 0).Select(l => l.Split('\t', 5)).Where(p => p.Length == 5)
            .ToDictionary(p => p[4], p => $"{p[0]}\t{p[1]}\t{p[2]}\t{p[3]}", StringComparer.Ordinal);
}
