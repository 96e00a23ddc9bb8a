using Onnx;
using DTSKD.Core.Deployment;
using static TorchSharp.torch;

namespace DTSKD.Core.Onnx.Import;

/// <summary>What a node computes from its inputs ("" inputs arrive as null), whether the network trains and whether this is the import's probe.</summary>
internal delegate Tensor[] StepRun(Tensor?[] inputs, StepMode mode);

/// <summary>Writes a node again for export, in opset <see cref="OnnxContract.Opset"/>: the writer's names of its inputs in, of its outputs out.</summary>
internal delegate IReadOnlyList<string> StepExport(OnnxStepWriter writer, IReadOnlyList<string> inputs);

/// <summary>How a step runs: in training (batch statistics, dropout) or not, and whether it is the import's probe at the file's input size.</summary>
internal readonly record struct StepMode(bool Training, bool Probing)
{
    public static StepMode Inference => new(false, false);
}

/// <summary>One node of the graph as TorchSharp: its inputs and outputs by ONNX name, what it computes, and how it is written again.</summary>
internal sealed record OnnxStep(string Name, string OpType, string[] Inputs, string[] Outputs, StepRun Run, StepExport Export)
{
    /// <summary>The node as the file has it, with its attributes copied and inputs mapped: right for every operator whose form did not change up to opset 17.</summary>
    public static StepExport AsWritten(NodeProto node) =>
        (w, inputs) => w.Node(node.OpType, inputs, node.Attribute.Select(a => a.Clone()), node.Output.Count);

    /// <summary>No node: the output is the input (Identity, Dropout in inference).</summary>
    public static StepExport PassThrough => (_, inputs) => [inputs[0]];
}
