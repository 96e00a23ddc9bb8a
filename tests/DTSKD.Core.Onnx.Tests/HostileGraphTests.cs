using DTSKD.Core.Onnx.Import;
using Google.Protobuf;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace DTSKD.Core.Onnx.Tests;

/// <summary>
/// Files built to break the importer (cycles, values nobody defines, data outside the file, shapes that claim more than
/// they hold, impossible reshapes, control flow): each is refused in one line naming the node or tensor, before any
/// module is built.
/// </summary>
public sealed class HostileGraphTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("dtskd-hostile-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>A graph of a 3x3 convolution on an [1, 3, 8, 8] image, a ReLU and a global pool, with the nodes given.</summary>
    private string Write(string name, Action<GraphProto> change, int opset = 13)
    {
        var graph = new GraphProto { Name = name };
        graph.Input.Add(Value("image", 1, 3, 8, 8));
        graph.Output.Add(Value("out", 1, 4, 1, 1));
        graph.Initializer.Add(Floats("w", [4, 3, 3, 3], 108));
        graph.Node.Add(Node("Conv", "conv", ["image", "w"], ["c"], ("strides", [2, 2]), ("pads", [1, 1, 1, 1])));
        graph.Node.Add(Node("Relu", "relu", ["c"], ["r"]));
        graph.Node.Add(Node("Conv", "conv2", ["r", "w2"], ["c2"], ("strides", [2, 2]), ("pads", [1, 1, 1, 1])));
        graph.Initializer.Add(Floats("w2", [4, 4, 3, 3], 144));
        graph.Node.Add(Node("GlobalAveragePool", "pool", ["c2"], ["out"]));
        change(graph);
        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        var path = Path.Combine(_folder, name + ".onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    private static ValueInfoProto Value(string name, params long[] dims)
    {
        var shape = new TensorShapeProto();
        shape.Dim.AddRange(dims.Select(d => new TensorShapeProto.Types.Dimension { DimValue = d }));
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)DataType.Float, Shape = shape } } };
    }

    private static TensorProto Floats(string name, long[] dims, int count)
    {
        var t = new TensorProto { Name = name, DataType = (int)DataType.Float, RawData = ByteString.CopyFrom(new byte[count * 4]) };
        t.Dims.AddRange(dims);
        return t;
    }

    private static NodeProto Node(string op, string name, string[] inputs, string[] outputs, params (string Name, long[] Values)[] ints)
    {
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        foreach (var (attribute, values) in ints)
        {
            var a = new AttributeProto { Name = attribute, Type = AttributeProto.Types.AttributeType.Ints };
            a.Ints.AddRange(values);
            node.Attribute.Add(a);
        }

        return node;
    }

    private static string Refusal(string path)
    {
        var act = () => OnnxImport.LoadBackbone(path, new OnnxImportOptions { BranchPoints = ["r"] }).Backbone.Dispose();
        var message = act.Should().Throw<InvalidDataException>().Which.Message;
        message.Should().NotContain("\n").And.Contain(path);
        return message;
    }

    [Fact]
    public void The_plain_graph_imports()
    {
        var (backbone, _) = OnnxImport.LoadBackbone(Write("plain", _ => { }), new OnnxImportOptions { BranchPoints = ["r"] });
        using (backbone)
        {
            backbone.NodeCount.Should().Be(4);
        }
    }

    [Fact]
    public void A_cycle_or_a_node_reading_itself_is_named()
    {
        Refusal(Write("cycle", g =>
        {
            g.Node[1].Input[0] = "c2";
            g.Node[2].Input[0] = "r";
        })).Should().Contain("the graph has a cycle: ONNX nodes 'relu', 'conv2'");
        Refusal(Write("self", g => g.Node[1].Input[0] = "r")).Should().Contain("the graph has a cycle: ONNX nodes 'relu'");
    }

    [Fact]
    public void A_value_nobody_defines_or_two_nodes_write_is_named()
    {
        Refusal(Write("ghost", g => g.Node[2].Input[0] = "ghost")).Should().Contain("ONNX node 'conv2' (Conv) reads 'ghost', which no node, initializer or graph input defines");
        Refusal(Write("twice", g => g.Node[2].Output[0] = "r")).Should().Contain("ONNX node 'conv2' (Conv) writes 'r', which node 'relu' already defines");
    }

    [Fact]
    public void Data_outside_the_file_is_refused_and_never_read()
    {
        // A real file with exactly the bytes the tensor needs: had the importer followed the path, it would have imported.
        var outside = Path.Combine(_folder, "weights.bin");
        File.WriteAllBytes(outside, new byte[144 * 4]);
        Refusal(Write("external", g =>
        {
            var t = g.Initializer.Single(i => i.Name == "w2");
            t.RawData = ByteString.Empty;
            t.DataLocation = TensorProto.Types.DataLocation.External;
            t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = outside });
        })).Should().Contain("tensor 'w2' keeps its data in an external file, which the importer never opens");
        Refusal(Write("external-default", g =>
        {
            var t = g.Initializer.Single(i => i.Name == "w2");
            t.RawData = ByteString.Empty;
            t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = "weights.bin" });
        })).Should().Contain("tensor 'w2' keeps its data in an external file");
    }

    [Fact]
    public void A_tensor_whose_shape_claims_more_than_it_holds_is_refused_before_anything_is_allocated()
    {
        Refusal(Write("huge", g =>
        {
            var t = g.Initializer.Single(i => i.Name == "w2");
            t.Dims.Clear();
            t.Dims.AddRange([1_000_000, 1_000_000, 4, 4]);
        })).Should().Contain("tensor 'w2' declares the shape [1000000, 1000000, 4, 4], more than 2147483648 values");
        Refusal(Write("short", g => g.Initializer.Single(i => i.Name == "w2").Dims[0] = 40)).Should().Contain("tensor 'w2' declares [40, 4, 3, 3] (1440 values) but holds 144");
        Refusal(Write("negative", g => g.Initializer.Single(i => i.Name == "w2").Dims[0] = -4)).Should().Contain("with a negative dimension");
    }

    [Fact]
    public void An_impossible_reshape_is_named()
    {
        Refusal(Write("reshape", g =>
        {
            var shape = new TensorProto { Name = "shape", DataType = (int)DataType.Int64, RawData = ByteString.CopyFrom(BitConverter.GetBytes(7L).Concat(BitConverter.GetBytes(-1L)).ToArray()) };
            shape.Dims.Add(2);
            g.Initializer.Add(shape);
            g.Node[3].Input[0] = "flat";
            g.Node.Insert(3, Node("Reshape", "reshape", ["c2", "shape"], ["flat"]));
        })).Should().Contain("ONNX node 'reshape' (Reshape)").And.Contain("[1, 4, 2, 2]");
    }

    [Fact]
    public void Control_flow_other_domains_and_broken_files_are_refused()
    {
        Refusal(Write("if", g => g.Node[1].Attribute.Add(new AttributeProto { Name = "then_branch", Type = AttributeProto.Types.AttributeType.Graph, G = new GraphProto() })))
            .Should().Contain("ONNX node 'relu' (Relu) holds a subgraph");
        Refusal(Write("domain", g => g.Node[1].Domain = "com.microsoft")).Should().Contain("ONNX node 'relu' (Relu, domain 'com.microsoft') is not supported");

        var truncated = Write("truncated", _ => { });
        File.WriteAllBytes(truncated, File.ReadAllBytes(truncated)[..200]);
        Refusal(truncated).Should().Contain("is not an ONNX model");

        var folder = Path.Combine(_folder, "folder.onnx");
        Directory.CreateDirectory(folder);
        Refusal(folder).Should().Contain("is a folder, not an ONNX model file");
    }
}
