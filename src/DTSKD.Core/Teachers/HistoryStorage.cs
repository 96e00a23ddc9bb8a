using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// How a <see cref="HistoricalTeacher"/> stores its per-sample, per-head predictions: dense rows or only the top k
/// probabilities, in which number format, and in which memory.
/// </summary>
/// <remarks>
/// <para>
/// Dense storage keeps heads × N × C values. That is 80 MB in float32 for CIFAR-100, but 20.5 GB for ImageNet-1k
/// with 4 heads. <see cref="TopK"/> keeps, per sample and head, only the k largest probabilities and their class
/// indices (in the smallest integer type that holds C): with k = 5 and float16 values, ImageNet-1k needs 103 MB.
/// </para>
/// <para>
/// A top-k row is rebuilt as a distribution: the k stored probabilities at their classes, and the mass they leave
/// (1 minus their sum) spread evenly over the other C − k classes. That is the most even completion consistent with
/// what was stored, so the target keeps its total mass and does not pretend to know the tail; the tail of a trained
/// network's softmax is nearly flat anyway. With k = C nothing is left to spread and the rows equal dense storage
/// in the same <see cref="ValueType"/> exactly.
/// </para>
/// </remarks>
public sealed record HistoryStorage
{
    /// <summary>The number format of the stored probabilities: Float32 (default), Float16 or BFloat16.</summary>
    public ScalarType ValueType { get; init; } = ScalarType.Float32;

    /// <summary>Null (default) for dense rows; otherwise k, the number of largest probabilities kept per sample and head (1..C).</summary>
    public int? TopK { get; init; }

    /// <summary>
    /// False (default) to keep the memory on the training device; true to keep it in host memory (pinned when the
    /// training device is CUDA) and move only each batch's rows, which frees the device's memory for the model.
    /// </summary>
    public bool OnHost { get; init; }

    /// <summary>Dense float32 rows on the training device: the reference's storage.</summary>
    public static HistoryStorage Dense { get; } = new();

    /// <summary>The top <paramref name="k"/> probabilities in float16 with their classes (see the remarks).</summary>
    /// <param name="k">How many probabilities to keep per sample and head.</param>
    /// <param name="onHost">True to keep the memory in host memory.</param>
    public static HistoryStorage TopKFloat16(int k, bool onHost = false) =>
        new() { TopK = k, ValueType = ScalarType.Float16, OnHost = onHost };

    /// <summary>The bytes the memory takes for a data set (values and class indices; the N-byte seen mask aside).</summary>
    /// <param name="sampleCount">N.</param>
    /// <param name="classCount">C.</param>
    /// <param name="headCount">The number of heads.</param>
    public long BytesFor(long sampleCount, int classCount, int headCount)
    {
        Validate(classCount);
        var rows = sampleCount * headCount;
        return TopK is { } k
            ? rows * k * (ElementSize(ValueType) + ElementSize(ClassIndexType(classCount)))
            : rows * classCount * ElementSize(ValueType);
    }

    /// <summary>Throws when the storage cannot hold rows of <paramref name="classCount"/> classes.</summary>
    /// <param name="classCount">C.</param>
    internal void Validate(int classCount)
    {
        if (ValueType is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
        {
            throw Invalid(nameof(ValueType), $"{nameof(ValueType)} must be Float32, Float16 or BFloat16; got {ValueType}.");
        }

        if (TopK is { } k && (k < 1 || k > classCount))
        {
            throw Invalid(nameof(TopK), $"{nameof(TopK)} must be in 1..{classCount} (the number of classes), or null for dense rows; got {k}.");
        }
    }

    private static ArgumentException Invalid(string name, string message) => new(message, name);

    /// <summary>The smallest integer type that holds the class indices 0..C-1.</summary>
    internal static ScalarType ClassIndexType(int classCount) =>
        classCount <= byte.MaxValue + 1 ? ScalarType.Byte : classCount <= short.MaxValue + 1 ? ScalarType.Int16 : ScalarType.Int32;

    internal static int ElementSize(ScalarType type) => type switch
    {
        ScalarType.Byte => 1,
        ScalarType.Int16 or ScalarType.Float16 or ScalarType.BFloat16 => 2,
        _ => 4,
    };
}
