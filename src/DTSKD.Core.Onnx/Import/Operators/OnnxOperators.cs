namespace DTSKD.Core.Onnx.Import;

/// <summary>The ONNX operators the importer knows, each with how its node becomes a step, and whether it may be evaluated on constants.</summary>
internal static class OnnxOperators
{
    private sealed record Definition(Func<OnnxNodeContext, OnnxStep> Build, bool Foldable = true);

    private static readonly Dictionary<string, Definition> All = new(StringComparer.Ordinal)
    {
        // Layers with weights that train: never evaluated on constants.
        ["Conv"] = new(ConvolutionOperator.Conv, Foldable: false),
        ["BatchNormalization"] = new(NormalizationOperators.BatchNormalization, Foldable: false),
        ["LayerNormalization"] = new(NormalizationOperators.LayerNormalization, Foldable: false),
        ["Gemm"] = new(DenseOperators.Gemm, Foldable: false),
        ["MatMul"] = new(DenseOperators.MatMul),
        ["PRelu"] = new(ElementwiseOperators.PRelu, Foldable: false),
        ["Dropout"] = new(ElementwiseOperators.Dropout, Foldable: false),

        ["Add"] = new(ElementwiseOperators.Binary),
        ["Sub"] = new(ElementwiseOperators.Binary),
        ["Mul"] = new(ElementwiseOperators.Binary),
        ["Div"] = new(ElementwiseOperators.Binary),
        ["Pow"] = new(ElementwiseOperators.Binary),
        ["Equal"] = new(ElementwiseOperators.Compare),
        ["Less"] = new(ElementwiseOperators.Compare),
        ["Greater"] = new(ElementwiseOperators.Compare),
        ["Where"] = new(ElementwiseOperators.Where),
        ["Not"] = new(ElementwiseOperators.Not),
        ["Relu"] = new(ElementwiseOperators.Unary),
        ["Sigmoid"] = new(ElementwiseOperators.Unary),
        ["Tanh"] = new(ElementwiseOperators.Unary),
        ["Erf"] = new(ElementwiseOperators.Unary),
        ["Sqrt"] = new(ElementwiseOperators.Unary),
        ["Exp"] = new(ElementwiseOperators.Unary),
        ["Log"] = new(ElementwiseOperators.Unary),
        ["Neg"] = new(ElementwiseOperators.Unary),
        ["Abs"] = new(ElementwiseOperators.Unary),
        ["Reciprocal"] = new(ElementwiseOperators.Unary),
        ["Floor"] = new(ElementwiseOperators.Unary),
        ["Ceil"] = new(ElementwiseOperators.Unary),
        ["Softplus"] = new(ElementwiseOperators.Unary),
        ["LeakyRelu"] = new(ElementwiseOperators.Unary),
        ["HardSwish"] = new(ElementwiseOperators.Unary),
        ["HardSigmoid"] = new(ElementwiseOperators.Unary),
        ["Identity"] = new(ElementwiseOperators.Unary),
        ["Gelu"] = new(ElementwiseOperators.Gelu),
        ["Clip"] = new(ElementwiseOperators.Clip),
        ["Softmax"] = new(ElementwiseOperators.Softmax),
        ["LogSoftmax"] = new(ElementwiseOperators.Softmax),

        ["MaxPool"] = new(PoolingOperators.Pool),
        ["AveragePool"] = new(PoolingOperators.Pool),
        ["GlobalAveragePool"] = new(PoolingOperators.Global),
        ["GlobalMaxPool"] = new(PoolingOperators.Global),
        ["ReduceMean"] = new(PoolingOperators.Reduce),
        ["ReduceSum"] = new(PoolingOperators.Reduce),
        ["ReduceMax"] = new(PoolingOperators.Reduce),
        ["ReduceMin"] = new(PoolingOperators.Reduce),

        ["Shape"] = new(ShapeOperators.Shape),
        ["Gather"] = new(ShapeOperators.Gather),
        ["Unsqueeze"] = new(ShapeOperators.Squeeze),
        ["Squeeze"] = new(ShapeOperators.Squeeze),
        ["Concat"] = new(ShapeOperators.Concat),
        ["Slice"] = new(ShapeOperators.Slice),
        ["Split"] = new(ShapeOperators.Split),
        ["Reshape"] = new(ReshapeOperator.Reshape),
        ["Flatten"] = new(ShapeOperators.Flatten),
        ["Transpose"] = new(ShapeOperators.Transpose),
        ["Expand"] = new(ShapeOperators.Expand),
        ["Cast"] = new(ShapeOperators.Cast),
        ["ConstantOfShape"] = new(ShapeOperators.ConstantOfShape),
        ["Pad"] = new(ShapeOperators.Pad),
        ["Resize"] = new(ResizeOperators.Resize),
        ["Upsample"] = new(ResizeOperators.Resize),
    };

    /// <summary>The operators the importer knows (Constant nodes are read as constants).</summary>
    public static readonly IReadOnlySet<string> Known = new HashSet<string>(All.Keys.Append("Constant"), StringComparer.Ordinal);

    /// <summary>Whether a node of the operator whose inputs are all constants is evaluated once at import.</summary>
    public static bool IsFoldable(string opType) => All.TryGetValue(opType, out var d) && d.Foldable;

    /// <summary>The node's step.</summary>
    /// <exception cref="InvalidDataException">The operator is unknown, or the node takes a form the importer does not; the message names the node.</exception>
    public static OnnxStep Build(OnnxNodeContext c) => All.TryGetValue(c.Node.OpType, out var d) && (c.Node.Domain is "" or "ai.onnx")
        ? d.Build(c)
        : throw c.Refuse($"is not supported{(c.Node.Domain is "" or "ai.onnx" ? "" : $" (domain '{c.Node.Domain}')")}; the importer knows {string.Join(", ", Known.Order(StringComparer.Ordinal))}.");
}
