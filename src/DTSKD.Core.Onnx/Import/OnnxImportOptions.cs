namespace DTSKD.Core.Onnx.Import;

/// <summary>How <see cref="OnnxImport"/> reads an ONNX image classifier: where the branches attach, what the backbone's feature is, and the input it expects.</summary>
public sealed class OnnxImportOptions
{
    /// <summary>The number of branches the default search attaches (<see cref="RecipeBranchCount"/>, as the paper's networks have).</summary>
    public const int RecipeBranchCount = 3;

    /// <summary>
    /// The tensors (ONNX value names) the branches attach to, shallowest first, one branch each; null (default) for the
    /// ends of the network's deepest <see cref="BranchCount"/> stages before its feature: the last tensor at each map size
    /// before it drops (a strided convolution, a max or average pool), as a ResNet's stage outputs.
    /// </summary>
    public IReadOnlyList<string>? BranchPoints { get; set; }

    /// <summary>How many branches the default search attaches (3 by default); ignored when <see cref="BranchPoints"/> are given.</summary>
    public int BranchCount { get; set; } = RecipeBranchCount;

    /// <summary>
    /// The tensor the new classifier reads, [B, F], [B, F, 1, 1] or a map [B, F, H, W] (averaged over H and W); null
    /// (default) for the graph's output, or the input of its final Gemm/MatMul when it ends in a classifier, or the map a
    /// final 1x1 convolution classifies before a global pool (SqueezeNet): the file's classifier is then left out.
    /// </summary>
    public string? FeaturePoint { get; set; }

    /// <summary>The per-channel mean of [0, 1]-scaled pixels the network expects (in the order images are stored, RGB); ImageNet's by default.</summary>
    public IReadOnlyList<double> Mean { get; set; } = [0.485, 0.456, 0.406];

    /// <summary>The per-channel standard deviation the network expects; ImageNet's by default.</summary>
    public IReadOnlyList<double> Std { get; set; } = [0.229, 0.224, 0.225];

    /// <summary>Whether the network was trained on BGR images (Caffe and CNTK exports): its first convolution's input channels are then reversed, so it takes RGB.</summary>
    public bool ReverseChannels { get; set; }

    /// <summary>
    /// The settings for ML.NET's <c>ResNet18.onnx</c> (NuGet <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c>): a CNTK export that
    /// takes BGR pixels of 0-255 minus a mean image (its <c>ResNetPreprocess.onnx</c>); here the mean image's per-channel
    /// averages (measured by eng/mlnet-resnet18-preprocess.py) and a scale of 1/255, in RGB order.
    /// </summary>
    public static OnnxImportOptions MlNetResNet18 => new()
    {
        Mean = [MlNetMeanRed / 255, MlNetMeanGreen / 255, MlNetMeanBlue / 255],
        Std = [1.0 / 255, 1.0 / 255, 1.0 / 255],
        ReverseChannels = true,
    };

    // The per-channel means of ResNetPreprocess.onnx's 224x224 MeanImage (0-255 scale).
    private const double MlNetMeanRed = 123.1516;
    private const double MlNetMeanGreen = 115.9029;
    private const double MlNetMeanBlue = 103.0626;

    internal void Validate()
    {
        if (Mean is null || Std is null || Mean.Count == 0 || Mean.Count != Std.Count || Std.Any(s => !(s > 0)))
        {
            throw new ArgumentException("OnnxImportOptions: Mean and Std need one value per channel, each Std > 0.");
        }

        if (BranchCount < 1)
        {
            throw new ArgumentException($"OnnxImportOptions: BranchCount is {BranchCount}; a DTSKD network has at least one branch.");
        }

        if (BranchPoints is { Count: 0 })
        {
            throw new ArgumentException("OnnxImportOptions: BranchPoints is empty; give at least one tensor, or null for the default search.");
        }
    }
}
