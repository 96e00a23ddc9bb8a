using static TorchSharp.torch;

namespace DTSKD.Core.Data;

/// <summary>
/// A labelled set of images the engine trains and evaluates on: N samples at stable positions 0..N-1 (what the
/// historical teacher keys on), their classes, and a reader that yields batches of them in any order.
/// </summary>
/// <remarks>
/// <para>
/// <see cref="ImageDataset"/> is the in-memory source (CIFAR, Fashion-MNIST, your own tensors); the
/// <c>DTSKD.Core.Images</c> package adds image folders, cached or streamed. A source of your own implements this
/// interface and an <see cref="IBatchReader"/>: yield uint8 images of <see cref="Shape"/> with their labels and
/// positions, in the order asked for, the same every time it is asked (resuming and seeds rely on it).
/// </para>
/// <para>Disposing the source frees what it holds (tensors, mapped files); readers opened from it must be disposed first.</para>
/// </remarks>
public interface IImageSource : IDisposable
{
    /// <summary>A short name for logs and reports.</summary>
    string Name { get; }

    /// <summary>N, the number of samples.</summary>
    int Count { get; }

    /// <summary>C, the number of classes; labels are 0..C-1.</summary>
    int ClassCount { get; }

    /// <summary>The name of each class, when the source knows them; null otherwise.</summary>
    IReadOnlyList<string>? ClassNames { get; }

    /// <summary>The shape of every image the source yields.</summary>
    ImageShape Shape { get; }

    /// <summary>Opens a reader that yields batches on <paramref name="device"/>.</summary>
    /// <param name="device">Where the batches' tensors are wanted (the training device).</param>
    /// <returns>The reader; the caller disposes it.</returns>
    IBatchReader OpenReader(Device device);
}
