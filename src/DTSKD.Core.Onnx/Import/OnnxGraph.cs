using Onnx;

namespace DTSKD.Core.Onnx.Import;

/// <summary>
/// An ONNX file's graph, checked before anything is built: its tensors' data inside the file and as large as their shapes
/// say, every value a node reads defined once, no cycles; the nodes in an order where each follows what it reads.
/// </summary>
internal sealed class OnnxGraph
{
    private OnnxGraph(string path, ModelProto model, List<(NodeProto Node, string Name)> nodes, Dictionary<string, int> producer, ValueInfoProto input)
    {
        (Path, Model, Nodes, Producer, Input) = (path, model, nodes, producer, input);
        Opset = (int)(model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version ?? 1);
    }

    /// <summary>The file, as given.</summary>
    public string Path { get; }

    /// <summary>The whole model (metadata, opsets, graph).</summary>
    public ModelProto Model { get; }

    /// <summary>The graph's nodes, each after the nodes it reads, with a name for messages (the node's own, or its operator and position).</summary>
    public IReadOnlyList<(NodeProto Node, string Name)> Nodes { get; }

    /// <summary>The node (index into <see cref="Nodes"/>) that computes each value.</summary>
    public IReadOnlyDictionary<string, int> Producer { get; }

    /// <summary>The image input: the first graph input that is not an initializer.</summary>
    public ValueInfoProto Input { get; }

    /// <summary>The default domain's opset.</summary>
    public int Opset { get; }

    /// <summary>The input's declared dimensions, 0 where symbolic.</summary>
    public long[] InputDims => [.. Input.Type?.TensorType?.Shape?.Dim.Select(d => d.DimValue) ?? []];

    /// <summary>Reads and checks a file.</summary>
    /// <exception cref="FileNotFoundException">It does not exist.</exception>
    /// <exception cref="InvalidDataException">It is not an ONNX model, or its graph cannot be built; the message names the node or tensor.</exception>
    public static OnnxGraph Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
        {
            throw new InvalidDataException($"'{path}' is a folder, not an ONNX model file.");
        }

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
        catch (Exception ex) when (ex is Google.Protobuf.InvalidProtocolBufferException or IOException)
        {
            throw new InvalidDataException($"'{path}' is not an ONNX model ({ex.Message.Split('\n')[0]})", ex);
        }

        if (model.Graph is null || model.Graph.Node.Count == 0)
        {
            throw new InvalidDataException($"'{path}' is not an ONNX model (it has no graph nodes).");
        }

        var opset = model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version ?? 1;
        if (opset < 7)
        {
            throw new InvalidDataException($"'{path}' uses ONNX opset {opset}; the importer reads opset 7 and newer (convert it with onnx.version_converter).");
        }

        var graph = model.Graph;
        var where = $"'{path}'";
        foreach (var t in graph.Initializer)
        {
            OnnxAttributes.Check(t, where);
        }

        if (graph.SparseInitializer.Count > 0)
        {
            throw new InvalidDataException($"{where}: tensor '{graph.SparseInitializer[0].Values?.Name}' is a sparse initializer; the importer reads dense tensors.");
        }

        var named = graph.Node.Select((n, i) => (Node: n, Name: n.Name.Length > 0 ? n.Name : $"{n.OpType}_{i}")).ToList();
        foreach (var (node, name) in named)
        {
            foreach (var a in node.Attribute)
            {
                if (a.T is { } t)
                {
                    OnnxAttributes.Check(t, $"{where}, ONNX node '{name}' ({node.OpType})");
                }

                if (a.G is not null || a.Graphs.Count > 0)
                {
                    throw new InvalidDataException($"{where}: ONNX node '{name}' ({node.OpType}) holds a subgraph; the importer takes graphs without control flow.");
                }
            }
        }

        var initializers = graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var input = graph.Input.FirstOrDefault(i => !initializers.Contains(i.Name))
            ?? throw new InvalidDataException($"{where} has no graph input besides its weights.");
        var defined = graph.Input.Select(i => i.Name).Concat(initializers).ToHashSet(StringComparer.Ordinal);
        var writer = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (node, name) in named)
        {
            foreach (var output in node.Output.Where(o => o.Length > 0))
            {
                if (defined.Contains(output) || !writer.TryAdd(output, name))
                {
                    throw new InvalidDataException($"{where}: ONNX node '{name}' ({node.OpType}) writes '{output}', which {(writer.TryGetValue(output, out var first) ? $"node '{first}'" : "an input or initializer")} already defines.");
                }
            }
        }

        foreach (var (node, name) in named)
        {
            if (node.Input.FirstOrDefault(i => i.Length > 0 && !defined.Contains(i) && !writer.ContainsKey(i)) is { } missing)
            {
                throw new InvalidDataException($"{where}: ONNX node '{name}' ({node.OpType}) reads '{missing}', which no node, initializer or graph input defines.");
            }
        }

        var (order, producer) = Sort(where, named, defined);
        return new OnnxGraph(path, model, order, producer, input);
    }

    /// <summary>The indices of the nodes the targets depend on, in order.</summary>
    public List<int> Needed(IEnumerable<string> targets, Func<int, bool>? skip = null)
    {
        var wanted = new Stack<string>(targets);
        var seen = new HashSet<int>();
        while (wanted.Count > 0)
        {
            if (Producer.TryGetValue(wanted.Pop(), out var i) && !(skip?.Invoke(i) ?? false) && seen.Add(i))
            {
                foreach (var value in Nodes[i].Node.Input.Where(v => v.Length > 0))
                {
                    wanted.Push(value);
                }
            }
        }

        return [.. seen.Order()];
    }

    /// <summary>The nodes in an order where each follows the nodes it reads (the file's order where it already is one); a cycle is named.</summary>
    private static (List<(NodeProto, string)> Order, Dictionary<string, int> Producer) Sort(string where, List<(NodeProto Node, string Name)> nodes, HashSet<string> defined)
    {
        var writerOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < nodes.Count; i++)
        {
            foreach (var o in nodes[i].Node.Output.Where(o => o.Length > 0))
            {
                writerOf[o] = i;
            }
        }

        var waiting = new int[nodes.Count];
        var readers = new List<int>[nodes.Count];
        for (var i = 0; i < nodes.Count; i++)
        {
            readers[i] = [];
        }

        for (var i = 0; i < nodes.Count; i++)
        {
            foreach (var source in nodes[i].Node.Input.Where(v => v.Length > 0 && !defined.Contains(v)).Select(v => writerOf[v]).Distinct())
            {
                waiting[i]++;
                readers[source].Add(i);
            }
        }

        // The file's order is kept where it is valid: the ready node listed first goes first.
        var ready = new SortedSet<int>(Enumerable.Range(0, nodes.Count).Where(i => waiting[i] == 0));
        var order = new List<(NodeProto, string)>(nodes.Count);
        var producer = new Dictionary<string, int>(StringComparer.Ordinal);
        while (ready.Count > 0)
        {
            var next = ready.Min;
            ready.Remove(next);
            foreach (var o in nodes[next].Node.Output.Where(o => o.Length > 0))
            {
                producer[o] = order.Count;
            }

            order.Add(nodes[next]);
            foreach (var r in readers[next])
            {
                if (--waiting[r] == 0)
                {
                    ready.Add(r);
                }
            }
        }

        if (order.Count < nodes.Count)
        {
            var cycle = Enumerable.Range(0, nodes.Count).Where(i => waiting[i] > 0).Select(i => $"'{nodes[i].Name}'").ToList();
            throw new InvalidDataException($"{where}: the graph has a cycle: ONNX nodes {string.Join(", ", cycle.Take(4))}{(cycle.Count > 4 ? $" and {cycle.Count - 4} more" : "")} read each other's outputs.");
        }

        return (order, producer);
    }
}
