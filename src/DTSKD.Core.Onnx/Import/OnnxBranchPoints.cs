namespace DTSKD.Core.Onnx.Import;

/// <summary>
/// Where the branches attach by default: at the end of each stage, the last tensor every path from the image to the
/// feature passes through before the map's size drops (a strided convolution, a max or average pool); the deepest
/// stages before the feature's own, as many as the branches asked for.
/// </summary>
internal static class OnnxBranchPoints
{
    /// <summary>The default points, shallowest first, found from the probe's shapes.</summary>
    /// <returns>The points, and the stage ends there were in all (more than asked for, or fewer).</returns>
    public static (List<string> Points, int Found) Find(IReadOnlyList<OnnxStep> steps, IReadOnlyDictionary<string, long[]> shapes, string input, string feature, int count)
    {
        var cuts = Cuts(steps, input, feature).Where(v => shapes.TryGetValue(v, out var s) && s.Length == 4).ToList();
        if (cuts.Count == 0)
        {
            return ([], 0);
        }

        // A pooled feature ([N, F] or [N, F, 1, 1]) lives at the level of the last map before it.
        var featureLevel = shapes[feature] is { Length: 4 } f && f[2] > 1 ? f[2] : cuts.Where(c => c != feature).Select(c => shapes[c][2]).DefaultIfEmpty(1).Last();
        var ends = new List<string>();
        for (var i = 0; i < cuts.Count - 1; i++)
        {
            var (here, next) = (shapes[cuts[i]][2], shapes[cuts[i + 1]][2]);
            if (next < here && here > featureLevel)
            {
                ends.Add(cuts[i]);
            }
        }

        return ([.. ends.Skip(Math.Max(0, ends.Count - count))], ends.Count);
    }

    /// <summary>Checks points given by name: each a map the feature depends on, listed once, shallowest first.</summary>
    /// <exception cref="InvalidDataException">A point is not a map, is given twice, or comes after a deeper one (named).</exception>
    public static void Check(string path, IReadOnlyList<string> points, IReadOnlyList<OnnxStep> steps, IReadOnlyDictionary<string, long[]> shapes)
    {
        var position = steps.SelectMany((s, i) => s.Outputs.Select(o => (o, i))).GroupBy(p => p.o, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First().i, StringComparer.Ordinal);
        for (var i = 0; i < points.Count; i++)
        {
            var point = points[i];
            if (points.Take(i).Contains(point, StringComparer.Ordinal))
            {
                throw new InvalidDataException($"'{path}': branch point '{point}' is given twice; each branch needs a tensor of its own.");
            }

            if (shapes[point] is not { Length: 4 })
            {
                throw new InvalidDataException($"'{path}': branch point '{point}' is [{string.Join(", ", shapes[point])}], not a feature map [N, C, H, W].");
            }

            if (i > 0 && position[point] < position[points[i - 1]])
            {
                throw new InvalidDataException($"'{path}': branch point '{point}' comes before '{points[i - 1]}' in the graph; give the branch points shallowest first.");
            }
        }
    }

    /// <summary>
    /// The values every path from the input to the feature passes through, in order: after each node, the only value
    /// computed from the image that a later node (or the feature) still reads.
    /// </summary>
    private static List<string> Cuts(IReadOnlyList<OnnxStep> steps, string input, string feature)
    {
        var lastUse = new Dictionary<string, int>(StringComparer.Ordinal) { [feature] = int.MaxValue };
        for (var i = 0; i < steps.Count; i++)
        {
            foreach (var value in steps[i].Inputs.Where(v => v.Length > 0))
            {
                lastUse[value] = Math.Max(lastUse.GetValueOrDefault(value, -1), value == feature ? int.MaxValue : i);
            }
        }

        var fromImage = new HashSet<string>(StringComparer.Ordinal) { input };
        var live = new HashSet<string>(StringComparer.Ordinal) { input };
        var cuts = new List<string>();
        for (var i = 0; i < steps.Count; i++)
        {
            var step = steps[i];
            if (step.Inputs.Any(fromImage.Contains))
            {
                foreach (var output in step.Outputs.Where(o => o.Length > 0))
                {
                    fromImage.Add(output);
                    if (lastUse.GetValueOrDefault(output, -1) > i)
                    {
                        live.Add(output);
                    }
                }
            }

            live.RemoveWhere(v => lastUse.GetValueOrDefault(v, -1) <= i);
            if (live.Count == 1 && live.Single() is var only && only != input && (cuts.Count == 0 || cuts[^1] != only))
            {
                cuts.Add(only);
            }
        }

        return cuts;
    }
}
