using System.Globalization;
using DTSKD.Core.Data;
using static TorchSharp.torch;

namespace DTSKD.Benchmarks.Study;

/// <summary>
/// A training source with symmetric label noise: a seeded choice of round(p · N) samples whose label is replaced by
/// another class, each of the other C − 1 classes equally likely. The choice depends only on (N, C, p, seed), not on
/// the labels, so it is made without reading the images; the images and every other label are untouched.
/// </summary>
public sealed class NoisyLabels : IImageSource
{
    private readonly IImageSource _source;
    private readonly Tensor _shift;

    /// <summary>Wraps a source (which it then owns).</summary>
    /// <param name="source">The training images.</param>
    /// <param name="fraction">p, the fraction of labels to replace, in [0, 1).</param>
    /// <param name="seed">The seed of the choice.</param>
    public NoisyLabels(IImageSource source, double fraction, long seed)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (!(fraction >= 0 && fraction < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "--label-noise must be a fraction in [0, 1).");
        }

        _source = source;
        Fraction = fraction;
        Seed = seed;
        NoisyCount = (int)Math.Round(fraction * source.Count);
        using var scope = NewDisposeScope();
        using var generator = new Generator((ulong)seed);
        var chosen = randperm(source.Count, generator: generator).narrow(0, 0, NoisyCount);

        // A shift of 1..C-1 classes (mod C) is another class, uniformly.
        var shifts = randint(1, source.ClassCount, [NoisyCount], generator: generator, dtype: ScalarType.Int64);
        _shift = zeros([source.Count], ScalarType.Int64).index_copy_(0, chosen, shifts).DetachFromDisposeScope();
    }

    /// <summary>p, the fraction of training labels replaced.</summary>
    public double Fraction { get; }

    /// <summary>The seed of the choice.</summary>
    public long Seed { get; }

    /// <summary>round(p · N), the number of labels replaced.</summary>
    public int NoisyCount { get; }

    /// <inheritdoc />
    public string Name => string.Create(CultureInfo.InvariantCulture, $"{_source.Name} with {Fraction * 100:0.#}% of the training labels replaced (seed {Seed})");

    /// <inheritdoc />
    public int Count => _source.Count;

    /// <inheritdoc />
    public int ClassCount => _source.ClassCount;

    /// <inheritdoc />
    public IReadOnlyList<string>? ClassNames => _source.ClassNames;

    /// <inheritdoc />
    public ImageShape Shape => _source.Shape;

    /// <inheritdoc />
    public IBatchReader OpenReader(Device device) => new Reader(_source.OpenReader(device), _shift.to(device).DetachFromDisposeScope(), ClassCount);

    /// <inheritdoc />
    public void Dispose()
    {
        _shift.Dispose();
        _source.Dispose();
    }

    private sealed class Reader(IBatchReader inner, Tensor shift, int classes) : IBatchReader
    {
        public IEnumerable<ImageBatch> Read(Tensor order, int batchSize, int firstStep = 0, CancellationToken cancellationToken = default)
        {
            foreach (var batch in inner.Read(order, batchSize, firstStep, cancellationToken))
            {
                using var scope = NewDisposeScope();
                var noisy = batch.Labels.add(shift.index_select(0, batch.Indices)).remainder(classes);
                batch.Labels.Dispose();
                yield return new ImageBatch(batch.Images, noisy, batch.Indices, batch.Step);
            }
        }

        public void Dispose()
        {
            inner.Dispose();
            shift.Dispose();
        }
    }
}
