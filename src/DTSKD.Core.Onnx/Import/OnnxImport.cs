using System.Globalization;
using DTSKD.Core.Models;
using Onnx;
using DTSKD.Core.Deployment;
using static TorchSharp.torch;

namespace DTSKD.Core.Onnx.Import;

/// <summary>
/// Imports an ONNX image classifier as a trainable TorchSharp backbone, and makes it a DTSKD network: branches and neck at
/// its branch points, a new classifier on its feature. The file is read with OnnxSharp (the ONNX schema on Google.Protobuf).
/// </summary>
/// <remarks>
/// The file is checked before anything is built (tensors inside the file and as large as their shapes say, no cycles,
/// every value defined); every node computed from constants alone is evaluated once (weights shared through Identity,
/// Constant nodes, shapes built from constants); the rest runs as TorchSharp, shapes computed from the image at run time.
/// The importer knows the operators of image classifiers (<see cref="SupportedOperators"/>), opsets 7 and newer, as
/// torch.onnx writes them for every torchvision classifier; a node it does not know is refused with its name and operator.
/// Only the nodes the branch points and the feature need are read, so a classifier's own head is left out.
/// </remarks>
public static class OnnxImport
{
    /// <summary>The ONNX operators the importer knows.</summary>
    public static IReadOnlySet<string> SupportedOperators => OnnxOperators.Known;

    /// <summary>Imports the backbone alone (the nodes up to its feature), for <paramref name="inputChannels"/>-channel images.</summary>
    /// <param name="path">An ONNX model file.</param>
    /// <param name="options">Branch points, feature, input conventions; null for the defaults.</param>
    /// <param name="inputChannels">The images' channels: the network's, or 1 for gray images into an RGB network (its first convolution's weights summed over RGB).</param>
    /// <returns>The backbone and what was adapted on the way.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not an ONNX model, its graph cannot be built, it holds an operator or form the importer does not take (named), or its branch points or feature cannot be found.</exception>
    public static (OnnxBackbone Backbone, IReadOnlyList<string> Notes) LoadBackbone(string path, OnnxImportOptions? options = null, int inputChannels = 3)
    {
        var built = Build(path, options ?? new OnnxImportOptions(), inputChannels);
        return (built.Backbone, built.Notes);
    }

    /// <summary>
    /// Imports the network as the backbone of a DTSKD model for <paramref name="model"/>'s classes: a branch at each branch
    /// point, the neck, and a new classifier on the feature; everything of the file is pretrained, the rest new.
    /// </summary>
    /// <param name="path">An ONNX model file.</param>
    /// <param name="model">The classes, input channels and neck width (512 when not set); the widths and stem are the file's.</param>
    /// <param name="options">Branch points (or their count), feature, input conventions; null for the defaults (three branches, ImageNet's normalisation, RGB).</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">As <see cref="LoadBackbone"/>.</exception>
    public static PretrainedNetwork Load(string path, MultiBranchModelOptions model, OnnxImportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new OnnxImportOptions();
        var built = Build(path, options, model.InputChannels);
        MultiBranchNetwork network;
        try
        {
            network = new MultiBranchNetwork(built.Backbone, [.. built.Backbone.StageChannels.Select(c => (int)c)], (int)built.Backbone.FeatureChannels, model.ClassCount, model.NeckWidth ?? 512);
        }
        catch
        {
            built.Backbone.Dispose();
            throw;
        }

        var state = network.state_dict().Keys.ToList();
        var pretrained = state.Where(k => k.StartsWith("backbone.", StringComparison.Ordinal)).ToList();
        var stages = built.Stages.Select(s => (s.Name, (IReadOnlyList<string>)[.. s.Parameters.Select(p => "backbone." + p)])).ToList();
        var gray = model.InputChannels == 1 && options.Mean.Count == 3;
        return new PretrainedNetwork(network, Path.GetFullPath(path), pretrained, [.. state.Except(pretrained)], stages,
            gray ? [options.Mean.Average()] : options.Mean, gray ? [options.Std.Average()] : options.Std, built.Notes)
        {
            MinimumImageSize = built.MinimumImageSize,
            RequiredImageSize = built.RequiredImageSize,
        };
    }

    /// <summary>
    /// The options that fit a file, and where its normalisation comes from: <see cref="OnnxImportOptions.MlNetResNet18"/> for
    /// ML.NET's <c>ResNet18.onnx</c> (recognised by its input <c>Input247</c> and output <c>Pooling395_Output_0</c>); the
    /// mean and standard deviation in the file's metadata (<c>dtskd.mean</c>/<c>dtskd.std</c>, as DTSKD.Core.Onnx writes
    /// them, or <c>mean</c>/<c>std</c>); else ImageNet's, as torchvision's networks expect.
    /// </summary>
    /// <param name="path">An ONNX model file.</param>
    /// <returns>New options, and one sentence saying where their normalisation comes from.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not an ONNX model, or its graph cannot be built.</exception>
    public static (OnnxImportOptions Options, string Normalisation) RecommendedOptions(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var model = OnnxGraph.Read(path).Model;
        var graph = model.Graph;
        if (graph.Input.Any(i => i.Name == "Input247") && graph.Output.Count == 1 && graph.Output[0].Name == "Pooling395_Output_0")
        {
            return (OnnxImportOptions.MlNetResNet18, "Recognised ML.NET's ResNet18.onnx: BGR pixels of 0-255 minus its mean image's channel means (OnnxImportOptions.MlNetResNet18).");
        }

        var metadata = model.MetadataProps.GroupBy(p => p.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Last().Value, StringComparer.Ordinal);
        foreach (var (meanKey, stdKey) in new[] { (OnnxContract.MeanKey, OnnxContract.StdKey), ("mean", "std") })
        {
            if (metadata.TryGetValue(meanKey, out var m) && metadata.TryGetValue(stdKey, out var s))
            {
                var (mean, std) = (Numbers(path, meanKey, m), Numbers(path, stdKey, s));
                var options = new OnnxImportOptions { Mean = mean, Std = std };
                try
                {
                    options.Validate();
                }
                catch (ArgumentException ex)
                {
                    throw new InvalidDataException($"'{path}': the metadata's {meanKey} and {stdKey} do not fit ({ex.Message})", ex);
                }

                return (options, $"Normalisation from the file's metadata ({meanKey} {m}; {stdKey} {s}).");
            }
        }

        return (new OnnxImportOptions(), "The file's metadata names no normalisation: ImageNet's mean and standard deviation are used, as torchvision's networks expect.");
    }

    /// <summary>The side of the square images the file's input declares (what it was exported at), or null when it is symbolic or not square.</summary>
    /// <param name="path">An ONNX model file.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not an ONNX model, or its graph cannot be built.</exception>
    public static int? InputSize(string path)
    {
        var dims = OnnxGraph.Read(path).InputDims;
        return dims.Length == 4 && dims[2] > 0 && dims[2] == dims[3] && dims[2] <= int.MaxValue ? (int)dims[2] : null;
    }

    private static double[] Numbers(string path, string key, string text)
    {
        var parts = text.Split([',', ' ', ';'], StringSplitOptions.RemoveEmptyEntries);
        var values = new double[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]) || !double.IsFinite(values[i]))
            {
                throw new InvalidDataException($"'{path}': the metadata's {key} '{text}' is not a list of numbers.");
            }
        }

        return values;
    }

    private sealed record Imported(OnnxBackbone Backbone, IReadOnlyList<(string Name, IReadOnlyList<string> Parameters)> Stages,
        IReadOnlyList<string> Notes, int MinimumImageSize, int? RequiredImageSize);

    private static Imported Build(string path, OnnxImportOptions options, int inputChannels)
    {
        ArgumentNullException.ThrowIfNull(path);
        options.Validate();
        var graph = OnnxGraph.Read(path);
        var dims = graph.InputDims;
        if (dims.Length != 4)
        {
            throw new InvalidDataException($"'{path}': the input '{graph.Input.Name}' is not a batch of images [N, C, H, W] ({dims.Length} dimensions).");
        }

        using var constants = OnnxConstants.Read(graph);
        var build = new OnnxBuild(graph, constants, dims[0]);
        constants.Fold(graph, build);
        var (feature, classifierNote) = FeaturePoint(graph, constants, options);
        foreach (var point in (options.BranchPoints ?? []).Append(feature).Where(p => !graph.Producer.ContainsKey(p) || constants.Folded.Contains(graph.Producer[p])))
        {
            throw new InvalidDataException($"'{path}' has no tensor '{point}' computed from the image (a branch point or the feature must be a node's output).");
        }

        var needed = graph.Needed([.. options.BranchPoints ?? [], feature], constants.Folded.Contains);
        if (needed.Select(i => graph.Nodes[i]).FirstOrDefault(n => !OnnxOperators.Known.Contains(n.Node.OpType) || n.Node.Domain is not ("" or "ai.onnx")) is { Node: not null } unknown)
        {
            throw new InvalidDataException($"'{path}': ONNX node '{unknown.Name}' ({unknown.Node.OpType}{(unknown.Node.Domain is "" or "ai.onnx" ? "" : $", domain '{unknown.Node.Domain}'")}) is not supported; the importer knows {string.Join(", ", OnnxOperators.Known.Order(StringComparer.Ordinal))}.");
        }

        var notes = new List<string>();
        if (classifierNote is not null)
        {
            notes.Add(classifierNote);
        }

        build.FirstConvolution = FirstConvolution(graph, constants, needed, inputChannels, options, notes);
        List<OnnxStep> steps;
        try
        {
            steps = [.. needed.Select(i => OnnxOperators.Build(new OnnxNodeContext(build, graph.Nodes[i].Node, graph.Nodes[i].Name, folding: false)))];
        }
        catch (InvalidDataException ex)
        {
            foreach (var (_, module) in build.Modules)
            {
                module.Dispose();
            }

            throw new InvalidDataException($"'{path}': {ex.Message}", ex);
        }

        var backbone = new OnnxBackbone(graph.Input.Name, steps, build, feature);
        try
        {
            return Probe(graph, backbone, steps, dims, inputChannels, options, build, notes);
        }
        catch (InvalidDataException ex) when (!ex.Message.StartsWith($"'{path}'", StringComparison.Ordinal))
        {
            backbone.Dispose();
            throw new InvalidDataException($"'{path}': {ex.Message}", ex);
        }
        catch
        {
            backbone.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The feature the new classifier reads: the option, else the graph output, walked back past a Softmax, Identity,
    /// Dropout and the file's classifier: a final Gemm/MatMul (its input), or a 1x1 convolution before a global pool (its input map).
    /// </summary>
    private static (string Feature, string? Note) FeaturePoint(OnnxGraph graph, OnnxConstants constants, OnnxImportOptions options)
    {
        if (options.FeaturePoint is { } given)
        {
            return (given, null);
        }

        var output = graph.Model.Graph.Output.FirstOrDefault()?.Name ?? throw new InvalidDataException($"'{graph.Path}' has no graph output.");
        NodeProto? Node(string value) => graph.Producer.TryGetValue(value, out var i) ? graph.Nodes[i].Node : null;
        string Name(string value) => graph.Nodes[graph.Producer[value]].Name;
        string Back(string value, params string[] ops)
        {
            while (Node(value) is { } n && ops.Contains(n.OpType))
            {
                value = n.Input[0];
            }

            return value;
        }

        var at = Back(output, "Softmax", "LogSoftmax", "Identity", "Dropout");
        if (Node(at) is { OpType: "Gemm" or "MatMul" } head && constants.Get(head.Input[1]) is not null)
        {
            return (head.Input[0], $"The file's classifier ('{Name(at)}', {head.OpType}) was left out: the new classifier reads '{head.Input[0]}'.");
        }

        // SqueezeNet's classifier: a 1x1 convolution to the classes, a ReLU, a global average, a flatten.
        var pooled = Back(at, "Flatten", "Reshape", "Squeeze");
        if (Node(pooled) is { OpType: "GlobalAveragePool" } pool && Node(Back(pool.Input[0], "Relu")) is { OpType: "Conv" } conv
            && constants.Get(conv.Input[1]) is { } w && w.dim() == 4 && w.shape[2] == 1 && w.shape[3] == 1)
        {
            var map = Back(conv.Input[0], "Dropout");
            return (map, $"The file's classifier (the 1x1 convolution '{Name(Back(pool.Input[0], "Relu"))}' and the global pool after it) was left out: the new classifier reads '{map}' averaged over the map.");
        }

        return (output, null);
    }

    /// <summary>How the first convolution's weights change: reversed channels for a BGR network, summed over them for gray images.</summary>
    private static Func<Tensor, Tensor>? FirstConvolution(OnnxGraph graph, OnnxConstants constants, List<int> needed, int inputChannels, OnnxImportOptions options, List<string> notes)
    {
        var input = graph.Input.Name;
        var consumers = needed.Select(i => graph.Nodes[i]).Where(n => n.Node.Input.Contains(input)).ToList();
        var first = consumers.Count == 1 && consumers[0].Node.OpType == "Conv" ? consumers[0] : default;
        var channels = first.Node is null ? (long?)null : constants.Get(first.Node.Input[1])?.shape[1];
        var gray = inputChannels == 1 && channels == 3;
        if ((gray || options.ReverseChannels) && (first.Node is null || channels is null))
        {
            throw new InvalidDataException($"'{graph.Path}': the input '{input}' feeds {string.Join(", ", consumers.Select(c => $"'{c.Name}' ({c.Node.OpType})"))}, not one convolution, so its channels cannot be adapted (gray images, ReverseChannels).");
        }

        if (channels is { } c && c != inputChannels && !gray)
        {
            throw new InvalidDataException($"'{graph.Path}': the first convolution '{first.Name}' takes {c}-channel images; these have {inputChannels} (gray images into an RGB network are supported).");
        }

        if (options.ReverseChannels)
        {
            notes.Add($"The network takes BGR images: its first convolution '{first.Name}' reads the channels in reverse, so it takes RGB.");
        }

        if (gray)
        {
            notes.Add("Gray images enter the RGB network as their channel replicated into red, green and blue (the first convolution's weights summed over them, the same computation), normalised with the mean and standard deviation averaged over the channels.");
        }

        return !gray && !options.ReverseChannels ? null : w =>
        {
            using var ordered = options.ReverseChannels ? w.flip(1) : w.alias();
            return gray ? ordered.sum(1, keepdim: true) : ordered.clone();
        };
    }

    /// <summary>
    /// Runs the backbone at the file's input size for every value's shape: the branch points (given, or found), the
    /// feature, the stages and the smallest image; then at a second size, to learn whether the file fixes its size.
    /// </summary>
    private static Imported Probe(OnnxGraph graph, OnnxBackbone backbone, List<OnnxStep> steps, long[] dims, int inputChannels, OnnxImportOptions options, OnnxBuild build, List<string> notes)
    {
        var path = graph.Path;
        var (h, w) = (dims[2] > 0 ? dims[2] : 224, dims[3] > 0 ? dims[3] : 224);
        var batch = dims[0] > 0 ? dims[0] : 1;
        var shapes = Shapes(backbone, batch, inputChannels, h, w);
        var feature = backbone.FeaturePoint;
        var featureShape = shapes[feature];
        if (!(featureShape.Length == 2 || featureShape.Length == 4))
        {
            throw new InvalidDataException($"'{path}': the feature '{feature}' is [{string.Join(", ", featureShape)}], not a feature [N, F] or a map [N, F, H, W]; give OnnxImportOptions.FeaturePoint (--feature-point) the pooled tensor.");
        }

        if (featureShape.Length == 4 && (featureShape[2] > 1 || featureShape[3] > 1))
        {
            backbone.PoolsFeature = true;
            notes.Add($"The feature '{feature}' is a {featureShape[2]}x{featureShape[3]} map of {featureShape[1]} channels: the new classifier reads its average over the map.");
        }

        List<string> points;
        if (options.BranchPoints is { } given)
        {
            points = [.. given];
            OnnxBranchPoints.Check(path, points, steps, shapes);
        }
        else
        {
            (points, var found) = OnnxBranchPoints.Find(steps, shapes, graph.Input.Name, feature, options.BranchCount);
            if (points.Count == 0)
            {
                throw new InvalidDataException($"'{path}': no branch points found (the map never shrinks before the feature '{feature}'); give OnnxImportOptions.BranchPoints (--branch-points).");
            }

            notes.Add(found < options.BranchCount
                ? $"The network's map shrinks {found} time{(found == 1 ? "" : "s")} before its feature: {found} branch{(found == 1 ? "" : "es")}, not {options.BranchCount}, at {Describe(points, shapes)}."
                : $"Branches at the ends of the last {points.Count} stages before the feature: {Describe(points, shapes)}.");
        }

        backbone.BranchPoints = points;
        backbone.StageChannels = [.. points.Select(p => shapes[p][1])];
        backbone.FeatureChannels = featureShape[1];
        var smallest = shapes.Values.Where(v => v.Length == 4 && v[2] > 1).Select(v => v[2]).DefaultIfEmpty(h).Min();
        var minimum = Math.Max(1, (int)(h / smallest));

        // A second size, one total stride away: the file's own sizes fixed into a reshape or a dense layer show here.
        var other = h > 2 * minimum ? h - minimum : h + minimum;
        int? required = null;
        try
        {
            if (other >= minimum)
            {
                Shapes(backbone, batch, inputChannels, other, other * w / h);
            }
        }
        catch (InvalidDataException ex)
        {
            required = (int)h;
            notes.Add($"The network takes {h}x{w} images only: a layer fixes the size it was exported at (at {other}x{other * w / h}: {ex.Message})");
        }

        notes.AddRange(build.Notes);
        if (!steps.Any(s => s.OpType == "BatchNormalization") && steps.Any(s => s.OpType == "Conv"))
        {
            notes.Add("The file has no batch norms: the network has none, or an eval-mode export folded them into its convolutions, so fine-tuning adapts the convolutions alone. " +
                "If it had them, export with training=torch.onnx.TrainingMode.TRAINING to keep them (docs/pretrained.md).");
        }

        return new Imported(backbone, Stages(steps, backbone, build), notes, minimum, required);
    }

    private static string Describe(IEnumerable<string> points, Dictionary<string, long[]> shapes) =>
        string.Join(", ", points.Select(p => $"'{p}' ({shapes[p][1]}x{shapes[p][2]}x{shapes[p][3]})"));

    /// <summary>Every value's shape at one input size.</summary>
    /// <exception cref="InvalidDataException">A node fails at that size (named).</exception>
    private static Dictionary<string, long[]> Shapes(OnnxBackbone backbone, long batch, int channels, long h, long w)
    {
        backbone.eval();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        using var zero = zeros(batch, channels, h, w);
        return backbone.Run(zero, new StepMode(Training: false, Probing: true)).ToDictionary(v => v.Key, v => v.Value.shape, StringComparer.Ordinal);
    }

    /// <summary>The stem (the nodes before the first tensor two nodes read: a residual network's first block input), then one stage per branch point, then the rest.</summary>
    private static List<(string Name, IReadOnlyList<string> Parameters)> Stages(List<OnnxStep> steps, OnnxBackbone backbone, OnnxBuild build)
    {
        var producer = steps.SelectMany((s, i) => s.Outputs.Select(o => (o, i))).GroupBy(p => p.o, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First().i, StringComparer.Ordinal);
        var readers = steps.SelectMany(s => s.Inputs).GroupBy(v => v, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var cuts = new List<(string Name, int Last)>();
        var firstCut = producer[backbone.BranchPoints[0]];
        var fork = Enumerable.Range(0, firstCut).FirstOrDefault(i => steps[i].Outputs.Any(o => readers.GetValueOrDefault(o) > 1), -1);
        if (fork > 0)
        {
            cuts.Add(("stem", fork));
        }

        cuts.AddRange(backbone.BranchPoints.Select((p, i) => ($"stage{i + 1}", producer[p])));
        cuts.Add(($"stage{backbone.BranchPoints.Count + 1}", int.MaxValue));
        var parameters = backbone.named_parameters().Select(p => p.name).ToList();
        var stages = new List<(string, IReadOnlyList<string>)>();
        var from = -1;
        foreach (var (name, last) in cuts)
        {
            var made = steps.Where((_, i) => i > from && i <= last).SelectMany(s => build.Made.GetValueOrDefault(s.Name) ?? []).ToHashSet(StringComparer.Ordinal);
            stages.Add((name, [.. parameters.Where(p => made.Contains(p.Split('.')[0]))]));
            from = last;
        }

        return stages;
    }
}
