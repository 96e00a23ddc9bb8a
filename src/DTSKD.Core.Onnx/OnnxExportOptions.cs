using DTSKD.Core.Deployment;
namespace DTSKD.Core.Onnx;

/// <summary>What <see cref="OnnxExport"/> writes besides the weights: the preprocessing contract and the form of the graph.</summary>
public sealed class OnnxExportOptions
{
    /// <summary>The side of the square images the model was trained on (the input's height and width).</summary>
    public required int ImageSize { get; init; }

    /// <summary>
    /// The side images are decoded to before a centre crop of <see cref="ImageSize"/> (ImageNet-style evaluation: 256 for a
    /// 224 crop); null (default) for no crop, <see cref="ImageSize"/> itself.
    /// </summary>
    public int? DecodeSize { get; init; }

    /// <summary>The per-channel means of the pixels scaled to [0, 1] the model was trained with; one per input channel.</summary>
    public required IReadOnlyList<double> Mean { get; init; }

    /// <summary>The per-channel standard deviations; one per input channel.</summary>
    public required IReadOnlyList<double> Std { get; init; }

    /// <summary>The class names in index order, written into the metadata; null when unknown.</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }

    /// <summary>Whether every head is an output (the backbone's, then each branch's: early exits); false (default) for the plain classifier.</summary>
    public bool AllHeads { get; init; }

    /// <summary>
    /// Whether each BatchNorm that follows a convolution is folded into it (fewer nodes, the same function up to float32
    /// rounding); false (default) keeps the graph as trained. docs/deploy.md measures both.
    /// </summary>
    public bool FoldBatchNorm { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first option that cannot describe a model input.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ImageSize, 1, nameof(ImageSize));
        if (DecodeSize < ImageSize)
        {
            throw new ArgumentOutOfRangeException(nameof(DecodeSize), DecodeSize, $"DecodeSize must be at least ImageSize ({ImageSize}): the crop is taken from the decoded image.");
        }

        if (DecodeSize > OnnxContract.LargestDecodeSize(ImageSize))
        {
            throw new ArgumentOutOfRangeException(nameof(DecodeSize), DecodeSize,
                $"DecodeSize must be at most {OnnxContract.LargestDecodeSize(ImageSize)} for ImageSize {ImageSize} (eight times it, at most {OnnxContract.MaxDecodeSize}): consumers refuse larger ones.");
        }

        ArgumentNullException.ThrowIfNull(Mean, nameof(Mean));
        ArgumentNullException.ThrowIfNull(Std, nameof(Std));
        if (Mean.Count is not (1 or 3) || Std.Count != Mean.Count)
        {
            throw new ArgumentException($"Mean and Std need one value per input channel (1 or 3); got {Mean.Count} and {Std.Count}.", nameof(Mean));
        }

        if (Mean.Any(m => !double.IsFinite(m)) || Std.Any(s => !(s > 0) || !double.IsFinite(s)))
        {
            throw new ArgumentException("Mean must be finite and Std finite and > 0.", nameof(Std));
        }

        if (ClassNames is { Count: 0 })
        {
            throw new ArgumentException("ClassNames is empty; give one name per class, or null.", nameof(ClassNames));
        }
    }
}
