using DTSKD.Core.Deployment;
namespace DTSKD.Core.Images;

/// <summary>One image of a folder: where it is, its class, and what identifies its content for the cache.</summary>
/// <param name="Path">The file.</param>
/// <param name="RelativePath">The file relative to the folder's root, with '/' separators.</param>
/// <param name="Label">The class index.</param>
/// <param name="Size">The file's size in bytes.</param>
/// <param name="ModifiedTicks">The file's last write time (UTC ticks).</param>
internal sealed record ImageEntry(string Path, string RelativePath, int Label, long Size, long ModifiedTicks);

/// <summary>
/// What a folder of images holds, read by torchvision's <c>ImageFolder</c> rules: one class per sub-folder, in ordinal
/// order of their names (the same class-to-index map), the images found recursively under each, walked in sorted order,
/// by extension, case-insensitively. Unlike torchvision, hidden files and folders (names starting with a dot, such as
/// macOS's <c>._photo.jpg</c>) are skipped and counted, as are files of other types.
/// </summary>
internal sealed class ImageFolderScan
{
    private static readonly string[] TestFolders = ["val", "test"];

    private ImageFolderScan(string root, ImageFolderLayout layout, IReadOnlyList<string> classes, List<ImageEntry> train, List<ImageEntry> test, int hidden, int other, IReadOnlyList<string> notes)
    {
        Notes = notes;
        Root = root;
        Layout = layout;
        Classes = classes;
        Train = train;
        Test = test;
        HiddenSkipped = hidden;
        OtherFilesSkipped = other;
    }

    public string Root { get; }

    public ImageFolderLayout Layout { get; }

    public IReadOnlyList<string> Classes { get; }

    public List<ImageEntry> Train { get; }

    public List<ImageEntry> Test { get; }

    public int HiddenSkipped { get; }

    public int OtherFilesSkipped { get; }

    /// <summary>What the walk did not follow, one line each: links that lead back above themselves, folders reached twice.</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>Reads a folder: <c>root/train</c> with <c>root/val</c> or <c>root/test</c>, or <c>root/&lt;class&gt;/...</c> split by a seeded, stratified hold-out.</summary>
    /// <exception cref="ImageFolderException">The folder does not hold at least two classes of images; the message says what is missing.</exception>
    public static ImageFolderScan Read(string root, double holdOutFraction, long seed)
    {
        ArgumentNullException.ThrowIfNull(root);
        if (File.Exists(root))
        {
            throw new ImageFolderException($"'{root}' is a file; give the folder that holds one folder per class.");
        }

        if (!Directory.Exists(root))
        {
            throw new ImageFolderException($"'{root}' does not exist.");
        }

        var (hidden, other) = (0, 0);
        var files = new FileOwners();
        var trainDir = Path.Combine(root, "train");
        var testDir = TestFolders.Select(n => Path.Combine(root, n)).FirstOrDefault(Directory.Exists);
        if (Directory.Exists(trainDir) && testDir is not null)
        {
            var classes = ClassFolders(trainDir);
            var testClasses = ClassFolders(testDir);
            var extra = testClasses.Except(classes, StringComparer.Ordinal).ToList();
            if (extra.Count > 0)
            {
                throw new ImageFolderException($"'{testDir}' has classes that '{trainDir}' has not: {string.Join(", ", extra)}.");
            }

            var train = Entries(root, trainDir, classes, files, ref hidden, ref other);
            var test = Entries(root, testDir, classes, files, ref hidden, ref other, requireEveryClass: false);
            files.ThrowIfShared(root);
            var layout = Path.GetFileName(testDir) == "val" ? ImageFolderLayout.TrainVal : ImageFolderLayout.TrainTest;
            return new ImageFolderScan(root, layout, classes, train, test, hidden, other, files.Notes);
        }

        var all = ClassFolders(root);
        var entries = Entries(root, root, all, files, ref hidden, ref other);
        files.ThrowIfShared(root);
        var (kept, held) = HoldOut(entries, all.Count, holdOutFraction, seed);
        return new ImageFolderScan(root, ImageFolderLayout.HoldOut, all, kept, held, hidden, other, files.Notes);
    }

    /// <summary>The class folders: every non-hidden sub-folder, in ordinal order (Python's <c>sorted</c> of the names).</summary>
    private static List<string> ClassFolders(string folder)
    {
        var names = Directory.EnumerateDirectories(folder).Select(Path.GetFileName).Where(n => n is not null && !n.StartsWith('.')).Select(n => n!)
            .Order(StringComparer.Ordinal).ToList();
        return names.Count switch
        {
            0 => throw new ImageFolderException($"'{folder}' has no class folders: put each class's images in a folder of its own ('{Path.Combine(folder, "cat")}', '{Path.Combine(folder, "dog")}', ...)."),
            1 => throw new ImageFolderException($"'{folder}' has one class folder ('{names[0]}'); a classifier needs at least two."),
            _ => names,
        };
    }

    private static List<ImageEntry> Entries(string root, string folder, List<string> classes, FileOwners files, ref int hidden, ref int other, bool requireEveryClass = true)
    {
        var entries = new List<ImageEntry>();
        for (var label = 0; label < classes.Count; label++)
        {
            var classDir = Path.Combine(folder, classes[label]);
            if (!Directory.Exists(classDir))
            {
                continue;
            }

            var before = entries.Count;

            // torchvision: sorted(os.walk(class_dir, followlinks=True)), then sorted file names in each folder; unlike it,
            // each real folder once (a link back above itself would be walked until the OS refuses).
            foreach (var (dir, realDir) in Walk(classDir, files.Notes, ref hidden).OrderBy(d => d.Path, StringComparer.Ordinal))
            {
                foreach (var file in Directory.EnumerateFiles(dir).Order(StringComparer.Ordinal))
                {
                    var name = Path.GetFileName(file);
                    if (name.StartsWith('.'))
                    {
                        hidden++;
                    }
                    else if (!ImageDecoder.Extensions.Any(e => name.EndsWith(e, StringComparison.OrdinalIgnoreCase)))
                    {
                        other++;
                    }
                    else if (files.Claim(RealPath.Child(realDir, file), file, folder, classes[label]))
                    {
                        var info = new FileInfo(file);
                        entries.Add(new ImageEntry(file, Path.GetRelativePath(root, file).Replace('\\', '/'), label, info.Length, info.LastWriteTimeUtc.Ticks));
                    }
                }
            }

            if (requireEveryClass && entries.Count == before)
            {
                throw new ImageFolderException($"Class folder '{classDir}' has no images ({string.Join(", ", ImageDecoder.Extensions)}).");
            }
        }

        return entries;
    }

    /// <summary>
    /// A folder and every folder under it with their real paths, following links, each real folder once; a link back to a
    /// folder above it (a cycle) or to a folder already walked is not followed and is noted. Hidden folders are left out
    /// (their files counted as hidden).
    /// </summary>
    private static List<(string Path, string Real)> Walk(string top, List<string> notes, ref int hidden)
    {
        var result = new List<(string, string)>();
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        var pending = new Stack<(string Dir, string Real, string Parent)>([(top, RealPath.Of(top), string.Empty)]);
        while (pending.Count > 0)
        {
            var (dir, real, parent) = pending.Pop();
            if (parent.Length > 0 && IsAtOrAbove(real, parent))
            {
                notes.Add($"'{dir}' leads back to '{real}', a folder above it (a symbolic-link cycle): not followed, nothing under it listed twice.");
                continue;
            }

            if (!seen.TryAdd(real, dir))
            {
                notes.Add($"'{dir}' is '{seen[real]}' again (a symbolic link): its images are listed once.");
                continue;
            }

            result.Add((dir, real));
            foreach (var sub in Directory.EnumerateDirectories(dir))
            {
                if (Path.GetFileName(sub).StartsWith('.'))
                {
                    hidden += Directory.EnumerateFiles(sub, "*", SearchOption.AllDirectories).Count();
                }
                else
                {
                    pending.Push((sub, RealPath.Child(real, sub), real));
                }
            }
        }

        return result;
    }

    /// <summary>Whether the real folder <paramref name="folder"/> is <paramref name="inside"/> or one of the folders that hold it.</summary>
    private static bool IsAtOrAbove(string folder, string inside)
    {
        var prefix = Path.EndsInDirectorySeparator(folder) ? folder : folder + Path.DirectorySeparatorChar;
        return string.Equals(folder, inside, StringComparison.Ordinal) || inside.StartsWith(prefix, StringComparison.Ordinal);
    }

    /// <summary>
    /// Which class (and split) each real image file was found in: one file reached through links from two classes, or from
    /// both splits, cannot be given a label or a split, and is refused with both paths.
    /// </summary>
    private sealed class FileOwners
    {
        private readonly Dictionary<string, (string Path, string Split, string Class)> _owners = new(StringComparer.Ordinal);
        private readonly List<string> _problems = [];

        public List<string> Notes { get; } = [];

        /// <summary>Whether to list the file: true the first time its real path is met.</summary>
        public bool Claim(string real, string path, string split, string className)
        {
            if (!_owners.TryGetValue(real, out var first))
            {
                _owners[real] = (path, split, className);
                return true;
            }

            if (first.Class != className || first.Split != split)
            {
                var conflict = first.Class != className
                    ? $"one image cannot be in class '{first.Class}' and in class '{className}'"
                    : "one image cannot be in both the training and the test split";
                _problems.Add($"'{path}' is the same file as '{first.Path}' (through a symbolic link): {conflict}.");
            }
            else
            {
                Notes.Add($"'{path}' is the same file as '{first.Path}' (a symbolic link): listed once.");
            }

            return false;
        }

        public void ThrowIfShared(string root)
        {
            if (_problems.Count > 0)
            {
                throw new ImageFolderException(_problems, $"{_problems.Count:N0} {(_problems.Count == 1 ? "file" : "files")} in '{root}' can be reached from two classes or splits (listed above): remove the links, or keep one copy where it belongs.");
            }
        }
    }

    /// <summary>
    /// A seeded, stratified hold-out: of each class's images, round(fraction x count) (at least one when the class has two
    /// or more, and never all of them) go to the test split; both splits keep the folder's order.
    /// </summary>
    private static (List<ImageEntry> Train, List<ImageEntry> Test) HoldOut(List<ImageEntry> entries, int classes, double fraction, long seed)
    {
        var test = new HashSet<ImageEntry>(ReferenceEqualityComparer.Instance);
        for (var label = 0; label < classes; label++)
        {
            var members = entries.Where(e => e.Label == label).ToList();
            var count = (int)Math.Round(fraction * members.Count, MidpointRounding.AwayFromZero);
            count = fraction > 0 && members.Count >= 2 ? Math.Clamp(count, 1, members.Count - 1) : 0;
            var random = new SplitMix64((ulong)seed ^ (0x9E3779B97F4A7C15UL * (ulong)(label + 1)));
            for (var i = members.Count - 1; i > 0; i--)
            {
                var j = (int)(random.Next() % (ulong)(i + 1));
                (members[i], members[j]) = (members[j], members[i]);
            }

            test.UnionWith(members.Take(count));
        }

        return ([.. entries.Where(e => !test.Contains(e))], [.. entries.Where(test.Contains)]);
    }

    /// <summary>SplitMix64: a small generator whose sequence is fixed by its definition, whatever the .NET version.</summary>
    private struct SplitMix64(ulong state)
    {
        private ulong _state = state;

        public ulong Next()
        {
            var z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }
}
