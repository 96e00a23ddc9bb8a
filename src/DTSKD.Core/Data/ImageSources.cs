using static TorchSharp.torch;

namespace DTSKD.Core.Data;

/// <summary>Helpers over any <see cref="IImageSource"/>.</summary>
public static class ImageSources
{
    /// <summary>
    /// The first <paramref name="count"/> samples of a source (positions 0..count-1), without copying anything, for quick
    /// runs on part of a data set. The result owns <paramref name="source"/> and disposes it.
    /// </summary>
    /// <param name="source">The whole source.</param>
    /// <param name="count">How many samples to keep; the whole source when it has no more.</param>
    /// <returns>A source of the first samples (the source itself when it has no more than <paramref name="count"/>).</returns>
    public static IImageSource First(IImageSource source, int count)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        return count >= source.Count ? source : new Prefix(source, count);
    }

    private sealed class Prefix(IImageSource inner, int count) : IImageSource
    {
        public string Name { get; } = $"{inner.Name}[:{count}]";

        public int Count => count;

        public int ClassCount => inner.ClassCount;

        public IReadOnlyList<string>? ClassNames => inner.ClassNames;

        public ImageShape Shape => inner.Shape;

        public IBatchReader OpenReader(Device device) => new Reader(inner.OpenReader(device), count);

        public void Dispose() => inner.Dispose();

        private sealed class Reader(IBatchReader inner, int count) : IBatchReader
        {
            public IEnumerable<ImageBatch> Read(Tensor order, int batchSize, int firstStep = 0, CancellationToken cancellationToken = default)
            {
                ArgumentNullException.ThrowIfNull(order);
                TensorChecks.IndexVector(order, nameof(order), order.dim() == 1 ? order.shape[0] : -1, count, "sample positions");
                return inner.Read(order, batchSize, firstStep, cancellationToken);
            }

            public void Dispose() => inner.Dispose();
        }
    }
}
