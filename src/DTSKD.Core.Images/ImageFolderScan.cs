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

    private ImageFolderScan(string root, ImageFolderLayout layout, IReadOnlyList<string> classes, List<ImageEntry> train, List<ImageEntry> test, int hidden, int other)
    {
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

            var train = Entries(root, trainDir, classes, ref hidden, ref other);
            var test = Entries(root, testDir, classes, ref hidden, ref other, requireEveryClass: false);
            var layout = Path.GetFileName(testDir) == "val" ? ImageFolderLayout.TrainVal : ImageFolderLayout.TrainTest;
            return new ImageFolderScan(root, layout, classes, train, test, hidden, other);
        }

        var all = ClassFolders(root);
        var entries = Entries(root, root, all, ref hidden, ref other);
        var (kept, held) = HoldOut(entries, all.Count, holdOutFraction, seed);
        return new ImageFolderScan(root, ImageFolderLayout.HoldOut, all, kept, held, hidden, other);
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

    private static List<ImageEntry> Entries(string root, string folder, List<string> classes, ref int hidden, ref int other, bool requireEveryClass = true)
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

            // torchvision: sorted(os.walk(class_dir, followlinks=True)), then sorted file names in each folder.
            foreach (var dir in Walk(classDir, ref hidden).Order(StringComparer.Ordinal))
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
                    else
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

    /// <summary>A folder and every folder under it, following links once, hidden ones left out (their files counted as hidden).</summary>
    private static List<string> Walk(string top, ref int hidden)
    {
        var result = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>([top]);
        while (pending.Count > 0)
        {
            var dir = pending.Pop();
            var real = new DirectoryInfo(dir).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? Path.GetFullPath(dir);
            if (!seen.Add(real))
            {
                continue;
            }

            result.Add(dir);
            foreach (var sub in Directory.EnumerateDirectories(dir))
            {
                if (Path.GetFileName(sub).StartsWith('.'))
                {
                    hidden += Directory.EnumerateFiles(sub, "*", SearchOption.AllDirectories).Count();
                }
                else
                {
                    pending.Push(sub);
                }
            }
        }

        return result;
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
