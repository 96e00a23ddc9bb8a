using static TorchSharp.torch;

namespace DTSKD.Core.Data;

/// <summary>
/// An in-memory labelled image set: uint8 images [N, channels, height, width] and int64 labels [N], the
/// <see cref="IImageSource"/> of data that fits in memory. A sample's index (its position, 0..N-1) is stable, which is
/// what the historical teacher keys on. The dataset owns its tensors and frees them on <see cref="Dispose"/>.
/// </summary>
/// <remarks>
/// A reader on a GPU copies the whole set to the device once (<see cref="OpenReader"/>), so a training step gathers its
/// batch there with no host transfer; on the CPU it reads the dataset's own tensors.
/// </remarks>
public sealed class ImageDataset : IImageSource
{
    // The dataset owns its tensors for its whole life: they leave any dispose scope the caller may be in.
    private ImageDataset(string name, Tensor images, Tensor labels, int classCount, IReadOnlyList<string>? classNames)
    {
        Name = name;
        ClassNames = classNames;
        Images = images.DetachFromDisposeScope();
        Labels = labels.DetachFromDisposeScope();
        ClassCount = classCount;
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>The images, uint8 [N, channels, height, width], on the CPU.</summary>
    public Tensor Images { get; }

    /// <summary>The class labels, int64 [N], each in 0..<see cref="ClassCount"/>-1.</summary>
    public Tensor Labels { get; }

    /// <inheritdoc />
    public int ClassCount { get; }

    /// <summary>The name of each class, when the source names them (CIFAR's label files, Fashion-MNIST's ten names); null otherwise.</summary>
    public IReadOnlyList<string>? ClassNames { get; }

    /// <summary>N, the number of samples.</summary>
    public int Count => (int)Images.shape[0];

    /// <inheritdoc />
    public ImageShape Shape => new((int)Images.shape[1], (int)Images.shape[2], (int)Images.shape[3]);

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
    /// <param name="classNames">Optional names of the classes, one per class.</param>
    public static ImageDataset FromTensors(Tensor images, Tensor labels, int classCount, string name = "dataset", IReadOnlyList<string>? classNames = null)
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

        TensorChecks.IndexVector(labels, nameof(labels), images.shape[0], classCount, "class labels");
        TorchSharpRuntime.EnsureLoaded();
        return new ImageDataset(
            name,
            images.to(CPU).contiguous().clone(),
            labels.to(ScalarType.Int64, CPU).clone(),
            classCount,
            classNames is null ? null : [.. classNames]);
    }

    /// <summary>
    /// Builds a dataset that takes ownership of the caller's tensors without copying them, for images that must not be
    /// copied: a memory-mapped file (<c>torch.from_file</c>), or a set too large for a second copy. The dataset disposes them.
    /// </summary>
    /// <param name="images">uint8 images [N, channels, height, width], contiguous, on the CPU.</param>
    /// <param name="labels">int64 labels [N] on the CPU, each in 0..<paramref name="classCount"/>-1.</param>
    /// <param name="classCount">C, the number of classes (at least 2).</param>
    /// <param name="name">A short name for logs.</param>
    /// <param name="classNames">Optional names of the classes, one per class.</param>
    public static ImageDataset Adopt(Tensor images, Tensor labels, int classCount, string name = "dataset", IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfLessThan(classCount, 2);
        if (images.dim() != 4 || images.shape[0] == 0 || images.dtype != ScalarType.Byte || images.device_type != TorchSharp.DeviceType.CPU || !images.is_contiguous())
        {
            throw new ArgumentException(
                $"images must be a non-empty contiguous uint8 CPU tensor [N, channels, height, width]; got {images.dtype} {TensorChecks.Shape(images)} on {images.device}.", nameof(images));
        }

        if (labels.dtype != ScalarType.Int64 || labels.device_type != TorchSharp.DeviceType.CPU)
        {
            throw new ArgumentException($"labels must be an int64 CPU tensor; got {labels.dtype} on {labels.device}.", nameof(labels));
        }

        TensorChecks.IndexVector(labels, nameof(labels), images.shape[0], classCount, "class labels");
        if (classNames is not null && classNames.Count != classCount)
        {
            throw new ArgumentException($"classNames must name each of the {classCount} classes; got {classNames.Count} names.", nameof(classNames));
        }

        return new ImageDataset(name, images, labels, classCount, classNames is null ? null : [.. classNames]);
    }

    /// <summary>Takes ownership of tensors made by a reader (already validated, contiguous and on the CPU).</summary>
    internal static ImageDataset Own(string name, Tensor images, Tensor labels, int classCount, IReadOnlyList<string>? classNames = null) =>
        new(name, images, labels, classCount, classNames);

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
            ClassNames);
    }

    /// <inheritdoc />
    public IBatchReader OpenReader(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return new TensorBatchReader(Images, Labels, device);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
    }
}
