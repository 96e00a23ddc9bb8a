using DTSKD.Core.Models;
using Google.Protobuf;
using Onnx;
using static TorchSharp.torch;

namespace DTSKD.Core.Onnx.Import;

/// <summary>
/// Imports an ONNX image classifier as a trainable TorchSharp backbone, and makes it a DTSKD network: branches and neck at
/// its branch points, a new classifier on its feature. The file is read with OnnxSharp (the ONNX schema on Google.Protobuf).
/// </summary>
/// <remarks>
/// The importer knows the operators of CNN classifiers (<see cref="SupportedOperators"/>), opsets 7 and newer; a node it
/// does not know is refused with its name and operator. Only the nodes the branch points and the feature need are read,
/// so a classifier's own head (Gemm, Softmax) is left out.
/// </remarks>
public static class OnnxImport
{
    /// <summary>The ONNX operators the importer knows.</summary>
    public static IReadOnlySet<string> SupportedOperators => OnnxOps.Known;

    /// <summary>Imports the backbone alone (the nodes up to its feature), for <paramref name="inputChannels"/>-channel images.</summary>
    /// <param name="path">An ONNX model file.</param>
    /// <param name="options">Branch points, feature, input conventions; null for the defaults.</param>
    /// <param name="inputChannels">The images' channels: the network's, or 1 for gray images into an RGB network (its first convolution's weights summed over RGB).</param>
    /// <returns>The backbone and what was adapted on the way.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not an ONNX model, holds an operator or form the importer does not take (named), or its branch points or feature cannot be found.</exception>
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
    /// <param name="options">Branch points, feature, input conventions; null for the defaults (ImageNet's normalisation, RGB).</param>
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
            network = new MultiBranchNetwork(built.Backbone, built.StageChannels, built.FeatureChannels, model.ClassCount, model.NeckWidth ?? 512);
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
        };
    }

    /// <summary>
    /// The options that fit a file: <see cref="OnnxImportOptions.MlNetResNet18"/> for ML.NET's <c>ResNet18.onnx</c>
    /// (recognised by its input <c>Input247</c> and output <c>Pooling395_Output_0</c>), else the defaults (ImageNet's
    /// normalisation, RGB).
    /// </summary>
    /// <param name="path">An ONNX model file.</param>
    /// <returns>New options, and whether the file was recognised.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not an ONNX model.</exception>
    public static (OnnxImportOptions Options, bool Recognised) RecommendedOptions(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var graph = Read(path).Graph;
        var mlnet = graph.Input.Any(i => i.Name == "Input247") && graph.Output.Count == 1 && graph.Output[0].Name == "Pooling395_Output_0";
        return mlnet ? (OnnxImportOptions.MlNetResNet18, true) : (new OnnxImportOptions(), false);
    }

    private sealed record Imported(OnnxBackbone Backbone, IReadOnlyList<int> StageChannels, int FeatureChannels,
        IReadOnlyList<(string Name, IReadOnlyList<string> Parameters)> Stages, IReadOnlyList<string> Notes, int MinimumImageSize);

    private static Imported Build(string path, OnnxImportOptions options, int inputChannels)
    {
        ArgumentNullException.ThrowIfNull(path);
        options.Validate();
        var graph = Read(path).Graph;
        var initializers = graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
        foreach (var constant in graph.Node.Where(n => n.OpType == "Constant"))
        {
            initializers[constant.Output[0]] = new OnnxAttributes(constant).Tensor("value")
                ?? throw new InvalidDataException($"'{path}': Constant node '{constant.Name}' has no tensor value.");
        }

        var input = graph.Input.FirstOrDefault(i => !initializers.ContainsKey(i.Name))
            ?? throw new InvalidDataException($"'{path}' has no graph input besides its weights.");
        var dims = input.Type?.TensorType?.Shape?.Dim.Select(d => d.DimValue).ToArray() ?? [];
        if (dims.Length != 4)
        {
            throw new InvalidDataException($"'{path}': the input '{input.Name}' is not a batch of images [N, C, H, W] ({dims.Length} dimensions).");
        }

        var nodes = graph.Node.Where(n => n.OpType != "Constant").Select((n, i) => (Node: n, Name: n.Name.Length > 0 ? n.Name : $"{n.OpType}_{i}")).ToList();
        var producer = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < nodes.Count; i++)
        {
            foreach (var output in nodes[i].Node.Output)
            {
                producer[output] = i;
            }
        }

        var (feature, classifierNote) = FeaturePoint(path, graph, nodes, producer, options);
        Supported(path, nodes, Needed(nodes, producer, [feature]));
        var points = options.BranchPoints?.ToList() ?? DefaultBranchPoints(nodes, producer, input.Name, feature);
        foreach (var point in points.Append(feature).Where(p => !producer.ContainsKey(p)))
        {
            throw new InvalidDataException($"'{path}' has no tensor '{point}' (a branch point or the feature must be a node's output).");
        }

        if (points.Count == 0)
        {
            throw new InvalidDataException($"'{path}': no branch points found (no strided convolution after the input before '{feature}'); give OnnxImportOptions.BranchPoints (--branch-points).");
        }

        var needed = Needed(nodes, producer, [.. points, feature]);
        Supported(path, nodes, needed);

        var notes = new List<string>();
        if (classifierNote is not null)
        {
            notes.Add(classifierNote);
        }

        var ops = new OnnxOps(initializers, dims[0]);
        var adapt = FirstConvolution(path, nodes, needed, input.Name, inputChannels, options, initializers, notes);
        var steps = needed.Select(i => ops.Build(nodes[i].Node, nodes[i].Name, nodes[i].Node.Input[0] == input.Name ? adapt : null)).ToList();
        var constants = steps.SelectMany(s => s.Inputs).Where(initializers.ContainsKey).Distinct(StringComparer.Ordinal)
            .Select((c, i) => (Value: c, Buffer: $"constant{i}_{OnnxOps.Sanitise(c)}", Tensor: OnnxAttributes.ToTensor(initializers[c], $"'{path}'"))).ToList();
        var backbone = new OnnxBackbone(input.Name, steps, ops.Modules, constants, points, feature);
        try
        {
            return Probe(path, backbone, dims, inputChannels, nodes, needed, producer, ops, notes);
        }
        catch
        {
            backbone.Dispose();
            throw;
        }
    }

    private static void Supported(string path, List<(NodeProto Node, string Name)> nodes, List<int> needed)
    {
        if (needed.Select(i => nodes[i]).FirstOrDefault(n => !OnnxOps.Known.Contains(n.Node.OpType)) is { Node: not null } unknown)
        {
            throw new InvalidDataException($"'{path}': ONNX node '{unknown.Name}' ({unknown.Node.OpType}) is not supported; the importer knows {string.Join(", ", OnnxOps.Known.Order(StringComparer.Ordinal))}.");
        }
    }

    private static ModelProto Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"ONNX model '{path}' does not exist.", path);
        }

        ModelProto model;
        try
        {
            using var stream = File.OpenRead(path);
            model = ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new InvalidDataException($"'{path}' is not an ONNX model ({ex.Message})", ex);
        }

        if (model.Graph is null || model.Graph.Node.Count == 0)
        {
            throw new InvalidDataException($"'{path}' is not an ONNX model (it has no graph nodes).");
        }

        var opset = model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version ?? 1;
        return opset < 7
            ? throw new InvalidDataException($"'{path}' uses ONNX opset {opset}; the importer reads opset 7 and newer (convert it with onnx.version_converter).")
            : model;
    }

    /// <summary>The feature the new classifier reads: the option, or the graph output, or the input of the file's own classifier.</summary>
    private static (string Feature, string? Note) FeaturePoint(string path, GraphProto graph, List<(NodeProto Node, string Name)> nodes, Dictionary<string, int> producer, OnnxImportOptions options)
    {
        if (options.FeaturePoint is { } given)
        {
            return (given, null);
        }

        var output = graph.Output.FirstOrDefault()?.Name ?? throw new InvalidDataException($"'{path}' has no graph output.");
        var at = output;
        while (producer.TryGetValue(at, out var i) && nodes[i].Node.OpType is "Softmax" or "LogSoftmax" or "Identity" or "Dropout")
        {
            at = nodes[i].Node.Input[0];
        }

        if (producer.TryGetValue(at, out var head) && nodes[head].Node.OpType is "Gemm" or "MatMul")
        {
            var classifier = nodes[head];
            return (classifier.Node.Input[0], $"The file's classifier ('{classifier.Name}', {classifier.Node.OpType}) was left out: the new classifier reads '{classifier.Node.Input[0]}'.");
        }

        return (output, null);
    }

    /// <summary>The inputs of the strided convolutions after the input: where a ResNet-like network's stages end.</summary>
    private static List<string> DefaultBranchPoints(List<(NodeProto Node, string Name)> nodes, Dictionary<string, int> producer, string input, string feature)
    {
        var upToFeature = Needed(nodes, producer, [feature]).ToHashSet();
        return [.. upToFeature.Order().Select(i => nodes[i].Node)
            .Where(n => n.OpType == "Conv" && new OnnxAttributes(n).Ints("strides") is { } s && s.Any(v => v > 1) && n.Input[0] != input)
            .Select(n => n.Input[0]).Distinct(StringComparer.Ordinal)];
    }

    /// <summary>The indices of the nodes the targets depend on, in file order.</summary>
    private static List<int> Needed(List<(NodeProto Node, string Name)> nodes, Dictionary<string, int> producer, IEnumerable<string> targets)
    {
        var wanted = new Stack<string>(targets);
        var seen = new HashSet<int>();
        while (wanted.Count > 0)
        {
            if (producer.TryGetValue(wanted.Pop(), out var i) && seen.Add(i))
            {
                foreach (var value in nodes[i].Node.Input.Where(v => v.Length > 0))
                {
                    wanted.Push(value);
                }
            }
        }

        return [.. seen.Order()];
    }

    /// <summary>How the first convolution's weights change: reversed channels for a BGR network, summed over them for gray images.</summary>
    private static Func<Tensor, Tensor>? FirstConvolution(string path, List<(NodeProto Node, string Name)> nodes, List<int> needed, string input,
        int inputChannels, OnnxImportOptions options, Dictionary<string, TensorProto> initializers, List<string> notes)
    {
        var consumers = needed.Select(i => nodes[i]).Where(n => n.Node.Input.Contains(input)).ToList();
        var first = consumers.Count == 1 && consumers[0].Node.OpType == "Conv" ? consumers[0] : default;
        var channels = first.Node is null ? (long?)null : initializers[first.Node.Input[1]].Dims[1];
        var gray = inputChannels == 1 && channels == 3;
        if ((gray || options.ReverseChannels) && first.Node is null)
        {
            throw new InvalidDataException($"'{path}': the input '{input}' feeds {string.Join(", ", consumers.Select(c => $"'{c.Name}' ({c.Node.OpType})"))}, not one convolution, so its channels cannot be adapted (gray images, ReverseChannels).");
        }

        if (channels is { } c && c != inputChannels && !gray)
        {
            throw new InvalidDataException($"'{path}': the first convolution '{first.Name}' takes {c}-channel images; these have {inputChannels} (gray images into an RGB network are supported).");
        }

        if (options.ReverseChannels)
        {
            notes.Add($"The network takes BGR images: its first convolution '{first.Name}' reads the channels in reverse, so it takes RGB.");
        }

        if (gray)
        {
            notes.Add($"Gray images enter the RGB network as their channel replicated into red, green and blue (the first convolution's weights summed over them, the same computation), normalised with the mean and standard deviation averaged over the channels.");
        }

        return !gray && !options.ReverseChannels ? null : w =>
        {
            using var ordered = options.ReverseChannels ? w.flip(1) : w.alias();
            return gray ? ordered.sum(1, keepdim: true) : ordered.clone();
        };
    }

    /// <summary>Runs the backbone once at the file's input size: shapes of the branch points and the feature, stages, the smallest image.</summary>
    private static Imported Probe(string path, OnnxBackbone backbone, long[] dims, int inputChannels, List<(NodeProto Node, string Name)> nodes,
        List<int> needed, Dictionary<string, int> producer, OnnxOps ops, List<string> notes)
    {
        var (h, w) = (dims[2] > 0 ? dims[2] : 224, dims[3] > 0 ? dims[3] : 224);
        List<long[]> stageShapes;
        long[] featureShape;
        long smallest;
        backbone.eval();
        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            using var zero = zeros(1, inputChannels, h, w);
            var values = backbone.Run(zero, probing: true);
            stageShapes = [.. backbone.BranchPoints.Select(p => values[p].shape)];
            featureShape = values[backbone.FeaturePoint].shape;
            smallest = values.Values.Where(v => v.dim() == 4 && v.shape[2] > 1).Select(v => v.shape[2]).DefaultIfEmpty(h).Min();
        }

        if (stageShapes.Select((s, i) => (s, i)).FirstOrDefault(x => x.s.Length != 4) is { s: not null } flat)
        {
            throw new InvalidDataException($"'{path}': branch point '{backbone.BranchPoints[flat.i]}' is [{string.Join(", ", flat.s)}], not a feature map [N, C, H, W].");
        }

        if (!(featureShape.Length == 2 || (featureShape.Length == 4 && featureShape[2] == 1 && featureShape[3] == 1)))
        {
            throw new InvalidDataException(
                $"'{path}': the feature '{backbone.FeaturePoint}' is [{string.Join(", ", featureShape)}], not a pooled feature [N, F] or [N, F, 1, 1]; give OnnxImportOptions.FeaturePoint (--feature-point) the pooled tensor.");
        }

        notes.AddRange(ops.Notes);
        var minimum = (int)(h / smallest);
        return new Imported(backbone, [.. stageShapes.Select(s => (int)s[1])], (int)featureShape[1], Stages(nodes, needed, producer, backbone, ops), notes, Math.Max(1, minimum));
    }

    /// <summary>The stem (the nodes before the first tensor two nodes read: a residual network's first block input), then one stage per branch point, then the rest.</summary>
    private static List<(string Name, IReadOnlyList<string> Parameters)> Stages(List<(NodeProto Node, string Name)> nodes, List<int> needed,
        Dictionary<string, int> producer, OnnxBackbone backbone, OnnxOps ops)
    {
        var readers = needed.SelectMany(i => nodes[i].Node.Input).GroupBy(v => v, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var cuts = new List<(string Name, int Last)>();
        var firstCut = producer[backbone.BranchPoints[0]];
        if (needed.Where(i => i < firstCut).FirstOrDefault(i => readers.GetValueOrDefault(nodes[i].Node.Output[0]) > 1) is var fork && fork > 0)
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
            var modules = needed.Where(i => i > from && i <= last).Select(i => ops.ModuleOf.GetValueOrDefault(nodes[i].Name)).OfType<string>().ToHashSet(StringComparer.Ordinal);
            stages.Add((name, [.. parameters.Where(p => modules.Contains(p.Split('.')[0]))]));
            from = last;
        }

        return stages;
    }
}
