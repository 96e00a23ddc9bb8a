namespace DTSKD.Core.Onnx;

/// <summary>What <see cref="OnnxExport.Export"/> wrote.</summary>
/// <param name="Path">The file's full path.</param>
/// <param name="Outputs">The graph's output names, backbone first.</param>
/// <param name="FoldedBatchNorms">How many BatchNorms were folded into their convolutions (0 unless asked for).</param>
/// <param name="Weights">The number of float32 weights in the file.</param>
/// <param name="Bytes">The file's size.</param>
public sealed record OnnxExportSummary(string Path, IReadOnlyList<string> Outputs, int FoldedBatchNorms, long Weights, long Bytes);
