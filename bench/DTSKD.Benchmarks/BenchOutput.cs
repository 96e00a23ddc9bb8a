namespace DTSKD.Benchmarks;

/// <summary>Whether a command's <c>--output</c> report can be written where it is asked for.</summary>
public static class BenchOutput
{
    /// <summary>Null when a file can be written at <paramref name="path"/>; else why not, as the end of a sentence naming it.</summary>
    public static string? Problem(string path)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            return "is a folder; give a file (for example report.md)";
        }

        // A folder that does not exist yet is made when the report is written: the nearest one that does must take files.
        var folder = Path.GetDirectoryName(full)!;
        while (!Directory.Exists(folder))
        {
            if (File.Exists(folder))
            {
                return $"cannot be written: '{folder}' is a file, not a folder";
            }

            folder = Path.GetDirectoryName(folder)!;
        }

        // Probed with a file of our own beside it: the report itself is written only once measured.
        var probe = Path.Combine(folder, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.probe");
        try
        {
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"cannot be written: {ex.Message.TrimEnd('.')}";
        }
    }

    /// <summary>Writes the report whole or not at all (a temporary file, then a rename), making its folder first.</summary>
    public static void Write(string path, string text)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path + ".tmp", text);
        File.Move(path + ".tmp", path, overwrite: true);
    }
}
