using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// Barnes-Hut t-SNE (van der Maaten, 2014), as scikit-learn's <c>TSNE</c> computes it by default: each point's
/// 3 x perplexity + 1 nearest neighbours with Gaussian affinities calibrated to the perplexity
/// (<see cref="NeighbourAffinities"/>), Student-t similarities in two dimensions with the repulsion of far cells taken
/// whole (<see cref="QuadTree"/>, angle 0.5); gradient descent with early exaggeration (12 for the first 250 iterations,
/// momentum 0.5, then 0.8, each phase starting afresh), per-coordinate gains and the "auto" learning rate (n / 48, at
/// least 50); a PCA start scaled to a standard deviation of 1e-4. Memory grows linearly with the points (no n x n matrix
/// anywhere, the neighbour search and <see cref="Trustworthiness"/> included, which work a block of rows at a time).
/// </summary>
public static class TsneMap
{
    /// <summary>The most points <see cref="Embed"/> takes (CIFAR-100's whole test set); a larger set is mapped through a seeded sample.</summary>
    public const int MaxPoints = 10_000;

    /// <summary>The fewest points <see cref="Embed"/> takes: below it there are no neighbourhoods to keep.</summary>
    public const int MinPoints = 10;

    private const int Block = 256;
    private const double Angle = 0.5;

    /// <summary>The perplexity used for n points: the one asked for, lowered to (n - 1) / 3 where the points are too few for it (as openTSNE does).</summary>
    public static double PerplexityFor(int n, double perplexity) => Math.Min(perplexity, (n - 1) / 3.0);

    /// <summary>Maps <paramref name="features"/> [n, d] to [n, 2].</summary>
    /// <param name="features">One row per point.</param>
    /// <param name="perplexity">The effective number of neighbours (scikit-learn's default, 30); lowered for few points (<see cref="PerplexityFor"/>).</param>
    /// <param name="iterations">Gradient steps (scikit-learn's default, 1000).</param>
    /// <param name="seed">Seeds the tiny jitter that breaks ties in the PCA start.</param>
    /// <returns>The map, float64, [n, 2].</returns>
    /// <exception cref="ArgumentException">Fewer than <see cref="MinPoints"/> or more than <see cref="MaxPoints"/> rows.</exception>
    public static Tensor Embed(Tensor features, double perplexity = 30, int iterations = 1000, long seed = 0)
    {
        ArgumentNullException.ThrowIfNull(features);
        var n = (int)features.shape[0];
        if (features.dim() != 2 || n < MinPoints || n > MaxPoints)
        {
            throw new ArgumentException($"t-SNE takes [n, d] features with {MinPoints} <= n <= {MaxPoints}; got [{string.Join(", ", features.shape)}].", nameof(features));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(perplexity, 1);
        NeighbourAffinities p;
        double[] y;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var x = features.to(ScalarType.Float64, CPU).contiguous();
            p = NeighbourAffinities.Compute(x, PerplexityFor(n, perplexity));
            y = PcaStart(x, seed).contiguous().data<double>().ToArray();
        }

        var rate = Math.Max(n / 12.0 / 4, 50);
        var exaggerated = Math.Min(250, iterations);
        Descend(p, y, 0, exaggerated, exaggeration: 12, momentum: 0.5, rate);
        Descend(p, y, exaggerated, iterations, exaggeration: 1, momentum: 0.8, rate);
        return tensor(y, [n, 2], ScalarType.Float64);
    }

    /// <summary>One phase of gradient descent, its update and gains starting afresh (as scikit-learn's phases do).</summary>
    private static void Descend(NeighbourAffinities p, double[] y, int from, int to, double exaggeration, double momentum, double rate)
    {
        var update = new double[y.Length];
        var gains = Enumerable.Repeat(1.0, y.Length).ToArray();
        var gradient = new double[y.Length];
        for (var it = from; it < to; it++)
        {
            Gradient(p, y, exaggeration, gradient);
            for (var c = 0; c < y.Length; c++)
            {
                // Delta-bar-delta: a coordinate still moving downhill (update against the gradient) gains speed.
                gains[c] = Math.Max(update[c] * gradient[c] < 0 ? gains[c] + 0.2 : gains[c] * 0.8, 0.01);
                update[c] = (momentum * update[c]) - (rate * gains[c] * gradient[c]);
                y[c] += update[c];
            }
        }
    }

    /// <summary>4 (exaggeration x attraction − repulsion / Z): attraction over the neighbour graph, repulsion by the quadtree.</summary>
    private static void Gradient(NeighbourAffinities p, double[] y, double exaggeration, double[] gradient)
    {
        var n = y.Length / 2;
        var tree = new QuadTree(y);
        var repulsion = new double[y.Length];
        var sums = new double[n];
        Parallel.For(0, n, i =>
        {
            Span<double> force = stackalloc double[2];
            sums[i] = tree.Repulsion(i, Angle, force);
            (repulsion[2 * i], repulsion[(2 * i) + 1]) = (force[0], force[1]);
        });

        // The normaliser summed in one order, so a run gives the same map whatever the threads did.
        var z = Math.Max(sums.Sum(), double.Epsilon);
        Parallel.For(0, n, i =>
        {
            double ax = 0, ay = 0;
            var (xi, yi) = (y[2 * i], y[(2 * i) + 1]);
            for (var e = p.RowStart[i]; e < p.RowStart[i + 1]; e++)
            {
                var j = p.Columns[e];
                var (dx, dy) = (xi - y[2 * j], yi - y[(2 * j) + 1]);
                var w = p.Values[e] / (1 + (dx * dx) + (dy * dy));
                (ax, ay) = (ax + (w * dx), ay + (w * dy));
            }

            gradient[2 * i] = 4 * ((exaggeration * ax) - (repulsion[2 * i] / z));
            gradient[(2 * i) + 1] = 4 * ((exaggeration * ay) - (repulsion[(2 * i) + 1] / z));
        });
    }

    /// <summary>
    /// How well a map keeps each point's nearest neighbours: 1 minus the penalised rank intrusions of the map's
    /// <paramref name="neighbours"/> nearest neighbours (Venna and Kaski), as <c>sklearn.manifold.trustworthiness</c>.
    /// </summary>
    /// <param name="features">The points, [n, d].</param>
    /// <param name="map">Their map, [n, 2] (or any dimension).</param>
    /// <param name="neighbours">k, scikit-learn's default 5; below n / 2.</param>
    /// <returns>A score from 0 to 1; 1 when every map neighbourhood is a feature neighbourhood.</returns>
    public static double Trustworthiness(Tensor features, Tensor map, int neighbours = 5)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(map);
        var n = features.shape[0];
        if (neighbours < 1 || neighbours >= n / 2.0)
        {
            throw new ArgumentOutOfRangeException(nameof(neighbours), neighbours, $"The neighbours must number from 1 to below n / 2 ({n / 2.0}).");
        }

        using var noGrad = no_grad();
        using var x = features.to(ScalarType.Float64, CPU);
        using var y = map.to(ScalarType.Float64, CPU);
        var penalty = 0L;

        // A block of rows at a time: rank[i, j] is j's place among i's neighbours in the features, 1 for the nearest.
        for (var from = 0L; from < n; from += Block)
        {
            using var scope = NewDisposeScope();
            var rows = Math.Min(Block, n - from);
            var self = arange(from, from + rows).unsqueeze(1).eq(arange(n).unsqueeze(0));
            var high = Distances(x, from, rows).masked_fill(self, double.PositiveInfinity);
            var rank = zeros([rows, n], ScalarType.Int64);
            rank.scatter_(1, high.argsort(1), arange(1, n + 1, ScalarType.Int64).expand(rows, n));
            var low = Distances(y, from, rows).masked_fill(self, double.PositiveInfinity);
            var nearest = low.argsort(1).narrow(1, 0, neighbours);
            penalty += (rank.gather(1, nearest) - neighbours).clamp_min(0).sum().item<long>();
        }

        return 1 - (2.0 / (n * neighbours * ((2.0 * n) - (3.0 * neighbours) - 1)) * penalty);
    }

    /// <summary>The squared distances of <paramref name="rows"/> rows from <paramref name="from"/> to every row.</summary>
    private static Tensor Distances(Tensor x, long from, long rows)
    {
        var norms = x.pow(2).sum(1);
        var block = x.narrow(0, from, rows);
        return (norms.narrow(0, from, rows).unsqueeze(1) + norms.unsqueeze(0) - (2 * block.matmul(x.T))).clamp_min(0);
    }

    /// <summary>The first two principal components, scaled so the first has a standard deviation of 1e-4.</summary>
    private static Tensor PcaStart(Tensor x, long seed)
    {
        var centred = x - x.mean([0], keepdim: true);
        var (_, _, v) = linalg.svd(centred, fullMatrices: false);
        var y = centred.matmul(v.narrow(0, 0, 2).T);

        // The sign of a principal axis is arbitrary: fix it (largest loading positive) so a map does not flip between runs.
        var flip = y.abs().argmax(0);
        var signs = y.gather(0, flip.unsqueeze(0)).sign();
        y = y * where(signs.eq(0), ones_like(signs), signs);
        using var generator = new Generator(unchecked((ulong)seed));
        var jitter = randn(y.shape, ScalarType.Float64, generator: generator) * 1e-12;
        return (y / y.select(1, 0).std() * 1e-4) + jitter;
    }
}
