using static TorchSharp.torch;

namespace DTSKD.Core.Data;

/// <summary>Yields batches of an <see cref="IImageSource"/> on one device, in the order it is given.</summary>
public interface IBatchReader : IDisposable
{
    /// <summary>
    /// The batches of one pass over <paramref name="order"/>: consecutive slices of <paramref name="batchSize"/> samples
    /// (the last one smaller when N is not a multiple), starting at slice <paramref name="firstStep"/>.
    /// </summary>
    /// <param name="order">Sample positions, int64 [n] on the CPU, each in 0..N-1; the reader does not keep it.</param>
    /// <param name="batchSize">Samples per batch.</param>
    /// <param name="firstStep">The first slice to yield (0, or later when resuming inside an epoch).</param>
    /// <param name="cancellationToken">Stops a reader that works ahead (prefetching) at the next batch.</param>
    /// <returns>Batches the caller disposes, one at a time: a reader may reuse memory once a batch is disposed.</returns>
    IEnumerable<ImageBatch> Read(Tensor order, int batchSize, int firstStep = 0, CancellationToken cancellationToken = default);
}
