using DTSKD.Core.Data;

namespace DTSKD.Core.Tests;

/// <summary>A source whose reader throws, as a deleted file does, when asked for one step of one epoch.</summary>
internal sealed class FailingSource(IImageSource inner, int epoch, int step) : IImageSource
{
    public const string File = "/data/train/cat/0042.png";

    private int _reads;

    public string Name => inner.Name;

    public int Count => inner.Count;

    public int ClassCount => inner.ClassCount;

    public IReadOnlyList<string>? ClassNames => inner.ClassNames;

    public ImageShape Shape => inner.Shape;

    public IBatchReader OpenReader(Device device) => new Reader(this, inner.OpenReader(device));

    public void Dispose()
    {
    }

    private sealed class Reader(FailingSource source, IBatchReader inner) : IBatchReader
    {
        public IEnumerable<ImageBatch> Read(Tensor order, int batchSize, int firstStep = 0, CancellationToken cancellationToken = default)
        {
            // The training set is read once per epoch (the test set has a reader of its own).
            var readEpoch = source._reads++;
            var current = firstStep;
            foreach (var batch in inner.Read(order, batchSize, firstStep, cancellationToken))
            {
                if (readEpoch == source.Epoch && current == source.Step)
                {
                    batch.Dispose();
                    throw new FileNotFoundException($"'{File}' is gone.", File);
                }

                current++;
                yield return batch;
            }
        }

        public void Dispose() => inner.Dispose();
    }

    private int Epoch => epoch;

    private int Step => step;
}
