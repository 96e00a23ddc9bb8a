using Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core.Onnx.Import;

/// <summary>
/// What an operator sees while it builds a node's step: the node, its attributes, which of its inputs are constants
/// (folded before the build), and where its modules and trainable weights are registered.
/// </summary>
internal sealed class OnnxNodeContext
{
    private readonly OnnxBuild _build;
    private readonly string[] _inputs;

    public OnnxNodeContext(OnnxBuild build, NodeProto node, string name, bool folding)
    {
        (_build, Node, Name, Folding) = (build, node, name, folding);
        A = new OnnxAttributes(node);
        _inputs = [.. node.Input];
    }

    public NodeProto Node { get; }

    public string Name { get; }

    /// <summary>Whether the node is evaluated once on constants (the constant pass), not built into the network.</summary>
    public bool Folding { get; }

    public OnnxAttributes A { get; }

    public int Opset => _build.Opset;

    /// <summary>The batch the file's input declares (0 when symbolic).</summary>
    public long DeclaredBatch => _build.DeclaredBatch;

    public string Where => $"ONNX node '{Name}' ({Node.OpType})";

    public string In(int i) => i < _inputs.Length ? _inputs[i] : string.Empty;

    /// <summary>The number of inputs the node lists (omitted optional ones included).</summary>
    public int InputCount => _inputs.Length;

    public bool Has(int i) => In(i).Length > 0;

    /// <summary>The folded constant at input i, or null when the input is computed from the image (or absent).</summary>
    public Tensor? ConstantAt(int i) => Has(i) ? _build.Constants.Get(In(i)) : null;

    /// <summary>The constant at input i; a node whose input must be known at import refuses otherwise, naming it.</summary>
    public Tensor RequireConstant(int i, string role) => ConstantAt(i)
        ?? throw Refuse($"takes its {role} from '{In(i)}', which is computed from the image; the importer needs it to be a constant (an initializer, a Constant node or computed from them).");

    /// <summary>An input's integer values (a constant's, read once), or null when it is computed at run time or absent.</summary>
    public long[]? LongsAt(int i) => ConstantAt(i) is { } t ? OnnxTensors.Longs(t) : null;

    /// <summary>The notes of the import (what was adapted), each once.</summary>
    public void Note(string note) => _build.Note(note);

    public InvalidDataException Refuse(string why) => new($"{Where} {why}");

    /// <summary>The image input's name.</summary>
    public string ImageInput => _build.ImageInput;

    /// <summary>How the first convolution's weights change (gray images, BGR order), when this node reads the image.</summary>
    public Func<Tensor, Tensor>? FirstConvolution => In(0) == _build.ImageInput ? _build.FirstConvolution : null;

    /// <summary>Registers a module made for this node (its parameters train with the network).</summary>
    public string Register(nn.Module module) => _build.Register(Name, module);

    /// <summary>
    /// Makes the constant at input i a trainable parameter of this node (a copy, so weights an exporter shared between
    /// nodes train apart, as they did before export); the step then reads the parameter.
    /// </summary>
    public void Train(int i)
    {
        var key = _build.Parameter(Name, ConstantAt(i)!);
        _inputs[i] = key;
    }

    /// <summary>Whether the constant at input i is a weight of the file (a float initializer of more than one value, or one reshaped).</summary>
    public bool IsWeight(int i) => Has(i) && !Folding && _build.Constants.IsWeight(In(i));

    /// <summary>
    /// The step, reading the node's inputs (a trained weight in place of its constant; only those of <paramref name="uses"/>
    /// when given, the others having been read at import) and writing its outputs.
    /// </summary>
    public OnnxStep Step(StepRun run, StepExport? export = null, params int[] uses) =>
        new(Name, Node.OpType, uses.Length == 0 ? [.. _inputs] : [.. uses.Select(In)], [.. Node.Output], run, export ?? OnnxStep.AsWritten(Node));

    /// <summary>A step with one output.</summary>
    public OnnxStep Op(Func<Tensor?[], StepMode, Tensor> run, StepExport? export = null, params int[] uses) => Step((x, m) => [run(x, m)], export, uses);

    /// <summary>A step with one output that reads the node's first input only.</summary>
    public OnnxStep Unary(Func<Tensor, Tensor> run, StepExport? export = null) => Step((x, _) => [run(x[0]!)], export, 0);
}
