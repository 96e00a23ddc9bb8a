namespace DTSKD.Core.Images;

/// <summary>
/// A path with every symbolic link in it resolved and <c>..</c> applied after the links, as the operating system walks it
/// (POSIX <c>realpath</c>): two paths name the same file or folder exactly when their real paths are equal.
/// </summary>
internal static class RealPath
{
    /// <summary>Links followed in one path before it is called a loop (Linux's limit).</summary>
    private const int MaxLinks = 40;

    private static readonly char[] Separators = [Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar];

    /// <summary>The real path of <paramref name="path"/> (its last parts need not exist).</summary>
    /// <exception cref="IOException">The path goes through more than 40 links (a loop of links).</exception>
    public static string Of(string path)
    {
        var full = Path.GetFullPath(path);
        var current = Path.GetPathRoot(full)!;
        var pending = new Stack<string>(Parts(full[current.Length..]).Reverse());
        var links = 0;
        while (pending.Count > 0)
        {
            var part = pending.Pop();
            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? current;
                continue;
            }

            var next = Path.Combine(current, part);
            var target = new FileInfo(next).LinkTarget;
            if (target is null)
            {
                current = next;
                continue;
            }

            if (++links > MaxLinks)
            {
                throw new IOException($"'{path}' goes through more than {MaxLinks} symbolic links (a loop of links).");
            }

            // A relative target is read from the folder that holds the link, which is real so far.
            if (Path.IsPathRooted(target))
            {
                current = Path.GetPathRoot(target)!;
                target = target[current.Length..];
            }

            foreach (var p in Parts(target).Reverse())
            {
                pending.Push(p);
            }
        }

        return current;
    }

    /// <summary>The real path of an entry of a folder whose real path is known: one lookup unless the entry is a link.</summary>
    public static string Child(string realParent, string entry)
    {
        var name = Path.GetFileName(entry);
        return new FileInfo(entry).LinkTarget is null ? Path.Combine(realParent, name) : Of(Path.Combine(realParent, name));
    }

    private static IEnumerable<string> Parts(string path) => path.Split(Separators, StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".");
}
