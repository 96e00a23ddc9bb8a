using static TorchSharp.torch;

namespace DTSKD.Core.Data;

/// <summary>
/// An in-memory labelled image dataset: uint8 images [N, channels, height, width] and int64 labels [N].
/// A sample's index (its position, 0..N-1) is stable, which is what the historical teacher keys on.
/// The dataset owns its tensors and frees them on <see cref="Dispose"/>.
/// </summary>
public sealed class ImageDataset : IDisposable
{
    // The dataset owns its tensors for its whole life: they leave any dispose scope the caller may be in.
    private ImageDataset(string name, Tensor images, Tensor labels, int classCount, Tensor? coarseLabels, IReadOnlyList<string>? classNames)
    {
        Name = name;
        ClassNames = classNames;
        Images = images.DetachFromDisposeScope();
        Labels = labels.DetachFromDisposeScope();
        ClassCount = classCount;
        CoarseLabels = coarseLabels?.DetachFromDisposeScope();
    }

    /// <summary>A short name for logs and reports (for example <c>cifar100-train</c>).</summary>
    public string Name { get; }

    /// <summary>The images, uint8 [N, channels, height, width], on the CPU.</summary>
    public Tensor Images { get; }

    /// <summary>The class labels, int64 [N], each in 0..<see cref="ClassCount"/>-1.</summary>
    public Tensor Labels { get; }

    /// <summary>CIFAR-100's 20 superclass labels (int64 [N]), when the source has them; null otherwise.</summary>
    public Tensor? CoarseLabels { get; }

    /// <summary>The number of classes C.</summary>
    public int ClassCount { get; }

    /// <summary>The name of each class, when the source names them (CIFAR's label files, Fashion-MNIST's ten names); null otherwise.</summary>
    public IReadOnlyList<string>? ClassNames { get; }

    /// <summary>N, the number of samples.</summary>
    public int Count => (int)Images.shape[0];

    /// <summary>Image channels.</summary>
    public int Channels => (int)Images.shape[1];

    /// <summary>Image height in pixels.</summary>
    public int Height => (int)Images.shape[2];

    /// <summary>Image width in pixels.</summary>
    public int Width => (int)Images.shape[3];

    /// <summary>
    /// Builds a dataset from tensors the caller made; copies them (to the CPU, contiguous), so the caller keeps
    /// ownership of the arguments.
    /// </summary>
    /// <param name="images">uint8 images [N, channels, height, width].</param>
    /// <param name="labels">Integer labels [N], each in 0..<paramref name="classCount"/>-1.</param>
    /// <param name="classCount">C, the number of classes (at least 2).</param>
    /// <param name="name">A short name for logs.</param>
    /// <param name="coarseLabels">Optional second label set [N] (for example CIFAR-100's superclasses).</param>
    /// <param name="classNames">Optional names of the classes, one per class.</param>
    public static ImageDataset FromTensors(Tensor images, Tensor labels, int classCount, string name = "dataset", Tensor? coarseLabels = null, IReadOnlyList<string>? classNames = null)
    {
        if (classNames is not null && classNames.Count != classCount)
        {
            throw new ArgumentException($"classNames must name each of the {classCount} classes; got {classNames.Count} names.", nameof(classNames));
        }

        ArgumentNullException.ThrowIfNull(images);
        ArgumentOutOfRangeException.ThrowIfLessThan(classCount, 2);
        if (images.dim() != 4 || images.shape[0] == 0 || images.dtype != ScalarType.Byte)
        {
            throw new ArgumentException(
                $"images must be a non-empty uint8 tensor [N, channels, height, width]; got {images.dtype} {TensorChecks.Shape(images)}.", nameof(images));
        }

        var count = images.shape[0];
        TensorChecks.IndexVector(labels, nameof(labels), count, classCount, "class labels");
        if (coarseLabels is not null)
        {
            TensorChecks.IndexVector(coarseLabels, nameof(coarseLabels), count, long.MaxValue, "labels");
        }

        TorchSharpRuntime.EnsureLoaded();
        return new ImageDataset(
            name,
            images.to(CPU).contiguous().clone(),
            labels.to(ScalarType.Int64, CPU).clone(),
            classCount,
            coarseLabels?.to(ScalarType.Int64, CPU).clone(),
            classNames is null ? null : [.. classNames]);
    }

    /// <summary>Takes ownership of tensors made by a reader (already validated, contiguous and on the CPU).</summary>
    internal static ImageDataset Own(string name, Tensor images, Tensor labels, int classCount, Tensor? coarseLabels = null, IReadOnlyList<string>? classNames = null) =>
        new(name, images, labels, classCount, coarseLabels, classNames);

    /// <summary>A new dataset of the first <paramref name="count"/> samples (indices 0..count-1), for quick runs.</summary>
    /// <param name="count">How many samples to keep; at least 1. A count of N or more copies the whole dataset.</param>
    public ImageDataset Take(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        var n = Math.Min(count, Count);
        using var scope = NewDisposeScope();
        return new ImageDataset(
            n == Count ? Name : $"{Name}[:{n}]",
            Images.narrow(0, 0, n).clone().MoveToOuterDisposeScope(),
            Labels.narrow(0, 0, n).clone().MoveToOuterDisposeScope(),
            ClassCount,
            CoarseLabels?.narrow(0, 0, n).clone().MoveToOuterDisposeScope(),
            ClassNames);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
        CoarseLabels?.Dispose();
    }
}
