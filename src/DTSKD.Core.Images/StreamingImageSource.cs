using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using DTSKD.Core.Data;
using DTSKD.Core.Deployment;
using static TorchSharp.torch;

namespace DTSKD.Core.Images;

/// <summary>
/// An image folder's split decoded anew every epoch, for folders larger than memory: a reader's worker threads decode the
/// batches in the order asked for, a few batches ahead of the model (a bounded queue), so memory stays flat and the
/// decoding overlaps the training step. A batch's images are exactly what the cache would hold.
/// </summary>
internal sealed class StreamingImageSource : IImageSource
{
    private readonly IReadOnlyList<ImageEntry> _entries;
    private readonly ImageFolderOptions _options;

    public StreamingImageSource(string name, IReadOnlyList<ImageEntry> entries, IReadOnlyList<string> classNames, ImageShape shape, ImageFolderOptions options)
    {
        Name = name;
        _entries = entries;
        ClassNames = classNames;
        Shape = shape;
        _options = options;
    }

    public string Name { get; }

    public int Count => _entries.Count;

    public int ClassCount => ClassNames.Count;

    public IReadOnlyList<string> ClassNames { get; }

    IReadOnlyList<string>? IImageSource.ClassNames => ClassNames;

    public ImageShape Shape { get; }

    public IBatchReader OpenReader(Device device) => new Reader(this, device);

    public void Dispose()
    {
    }

    private sealed class Reader(StreamingImageSource source, Device device) : IBatchReader
    {
        public IEnumerable<ImageBatch> Read(Tensor order, int batchSize, int firstStep = 0, CancellationToken cancellationToken = default)
        {
            ArgumentNullException.ThrowIfNull(order);
            ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
            ArgumentOutOfRangeException.ThrowIfNegative(firstStep);
            if (order.dim() != 1 || order.dtype is not (ScalarType.Int64 or ScalarType.Int32))
            {
                throw new ArgumentException($"order must be an int64 vector of sample positions; got {order.dtype} with {order.dim()} dimensions.", nameof(order));
            }

            using var positions = order.to(ScalarType.Int64, CPU).contiguous();
            var indices = positions.data<long>().ToArray();
            if (indices.Any(i => i < 0 || i >= source.Count))
            {
                throw new ArgumentException($"order holds positions outside 0..{source.Count - 1}.", nameof(order));
            }

            return Batches(indices, batchSize, firstStep, cancellationToken);
        }

        public void Dispose()
        {
        }

        private IEnumerable<ImageBatch> Batches(long[] indices, int batchSize, int firstStep, CancellationToken cancellationToken)
        {
            var steps = (indices.Length + batchSize - 1) / batchSize;
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            using var queue = new BlockingCollection<ImageBatch>(source._options.Prefetch);
            var producer = Task.Run(() => Produce(indices, batchSize, firstStep, steps, queue, stop.Token), CancellationToken.None);
            try
            {
                foreach (var batch in queue.GetConsumingEnumerable(cancellationToken))
                {
                    yield return batch;
                }

                // A decode that failed ends the queue early: its error, not a short epoch.
                producer.GetAwaiter().GetResult();
            }
            finally
            {
                stop.Cancel();
                try
                {
                    producer.Wait(CancellationToken.None);
                }
                catch (AggregateException)
                {
                    // Stopped on purpose (the consumer left the epoch early), or already reported above.
                }

                while (queue.TryTake(out var left))
                {
                    left.Dispose();
                }
            }
        }

        private void Produce(long[] indices, int batchSize, int firstStep, int steps, BlockingCollection<ImageBatch> queue, CancellationToken cancellationToken)
        {
            try
            {
                var (channels, size) = (source.Shape.Channels, source.Shape.Height);
                var rowBytes = channels * size * size;
                for (var step = firstStep; step < steps; step++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var start = step * batchSize;
                    var count = Math.Min(batchSize, indices.Length - start);
                    // Rented and returned each batch: streaming allocates nothing that grows with the epochs.
                    var pixels = ArrayPool<byte>.Shared.Rent(count * rowBytes);
                    try
                    {
                        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = source._options.Workers, CancellationToken = cancellationToken }, i =>
                        {
                            var entry = source._entries[(int)indices[start + i]];
                            ImageDecoder.DecodeFile(entry.Path, size, channels, pixels.AsSpan(i * rowBytes, rowBytes), source._options.MaxPixels);
                        });
                    }
                    catch (AggregateException ex) when (ex.InnerExceptions.Count > 0)
                    {
                        ArrayPool<byte>.Shared.Return(pixels);
                        ExceptionDispatchInfo.Capture(ex.InnerExceptions[0]).Throw();
                    }

                    var labels = new long[count];
                    var positions = new long[count];
                    for (var i = 0; i < count; i++)
                    {
                        positions[i] = indices[start + i];
                        labels[i] = source._entries[(int)positions[i]].Label;
                    }

                    ImageBatch batch;
                    using (var scope = NewDisposeScope())
                    {
                        var images = empty([count, channels, size, size], ScalarType.Byte);
                        pixels.AsSpan(0, count * rowBytes).CopyTo(images.bytes);
                        ArrayPool<byte>.Shared.Return(pixels);
                        batch = new ImageBatch(images.to(device), tensor(labels).to(device), tensor(positions).to(device), step);
                    }

                    try
                    {
                        queue.Add(batch, cancellationToken);
                    }
                    catch
                    {
                        batch.Dispose();
                        throw;
                    }
                }
            }
            finally
            {
                queue.CompleteAdding();
            }
        }
    }
}
