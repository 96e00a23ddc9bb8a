using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// Exact t-SNE (van der Maaten and Hinton, 2008) on TorchSharp, as scikit-learn's <c>TSNE(method="exact")</c> computes
/// it: Gaussian affinities calibrated to a perplexity by bisection, symmetrised; Student-t similarities in two
/// dimensions; gradient descent with early exaggeration (12 for the first 250 iterations), momentum 0.5 then 0.8,
/// per-coordinate gains and the "auto" learning rate (n / 48, at least 50); a PCA start scaled to a standard deviation of
/// 1e-4. Every pairwise matrix is n x n in float64, so it is meant for a few thousand points (3,000 take about 70 MB a
/// matrix); <see cref="Trustworthiness"/> scores a map as <c>sklearn.manifold.trustworthiness</c> does.
/// </summary>
public static class TsneMap
{
    /// <summary>The most points <see cref="Embed"/> takes: above it the n x n matrices outgrow a laptop's memory.</summary>
    public const int MaxPoints = 5000;

    /// <summary>Maps <paramref name="features"/> [n, d] to [n, 2].</summary>
    /// <param name="features">One row per point.</param>
    /// <param name="perplexity">The effective number of neighbours (scikit-learn's default, 30).</param>
    /// <param name="iterations">Gradient steps (scikit-learn's default, 1000).</param>
    /// <param name="seed">Seeds the tiny jitter that breaks ties in the PCA start.</param>
    /// <returns>The map, float64, [n, 2].</returns>
    public static Tensor Embed(Tensor features, double perplexity = 30, int iterations = 1000, long seed = 0)
    {
        ArgumentNullException.ThrowIfNull(features);
        var n = features.shape[0];
        if (features.dim() != 2 || n < 4 || n > MaxPoints)
        {
            throw new ArgumentException($"t-SNE takes [n, d] features with 4 <= n <= {MaxPoints}; got [{string.Join(", ", features.shape)}].", nameof(features));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(perplexity, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(perplexity, n, nameof(perplexity));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = features.to(ScalarType.Float64, CPU);
        var p = Affinities(SquaredDistances(x), perplexity);
        var y = PcaStart(x, seed);
        var update = zeros_like(y);
        var gains = ones_like(y);
        var rate = Math.Max(n / 12.0 / 4, 50);
        for (var it = 0; it < iterations; it++)
        {
            using var step = NewDisposeScope();
            var exaggeration = it < 250 ? 12.0 : 1.0;
            var momentum = it < 250 ? 0.5 : 0.8;
            var grad = Gradient(p, y, exaggeration);

            // Delta-bar-delta: a coordinate still moving downhill (update against the gradient) gains speed.
            var downhill = (update * grad) < 0;
            gains = where(downhill, gains + 0.2, gains * 0.8).clamp_min(0.01);
            update = (update * momentum) - (gains * grad * rate);
            y = y + update;
            (y, update, gains) = (y.MoveToOuterDisposeScope(), update.MoveToOuterDisposeScope(), gains.MoveToOuterDisposeScope());
        }

        return y.MoveToOuterDisposeScope();
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

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var high = SquaredDistances(features.to(ScalarType.Float64, CPU));
        high = WithDiagonal(high, double.PositiveInfinity);

        // rank[i, j]: j's place among i's neighbours in the features, 1 for the nearest.
        var order = high.argsort(1);
        var rank = zeros([n, n], ScalarType.Int64);
        rank.scatter_(1, order, arange(1, n + 1, ScalarType.Int64).expand(n, n));
        var low = SquaredDistances(map.to(ScalarType.Float64, CPU));
        low = WithDiagonal(low, double.PositiveInfinity);
        var nearest = low.argsort(1).narrow(1, 0, neighbours);
        var penalty = (rank.gather(1, nearest) - neighbours).clamp_min(0).sum().item<long>();
        return 1 - (2.0 / (n * neighbours * ((2.0 * n) - (3.0 * neighbours) - 1)) * penalty);
    }

    private static Tensor WithDiagonal(Tensor matrix, double value) =>
        matrix.masked_fill(eye(matrix.shape[0], dtype: ScalarType.Bool), value);

    private static Tensor SquaredDistances(Tensor x)
    {
        var norms = x.pow(2).sum(1, keepdim: true);
        return (norms + norms.T - (2 * x.matmul(x.T))).clamp_min(0);
    }

    /// <summary>The symmetric joint probabilities: each row's Gaussian width found by bisection to the perplexity.</summary>
    private static Tensor Affinities(Tensor distances, double perplexity)
    {
        var n = distances.shape[0];
        var target = Math.Log(perplexity);
        var beta = ones(n, 1, ScalarType.Float64);
        var lo = full([n, 1], double.NegativeInfinity, ScalarType.Float64);
        var hi = full([n, 1], double.PositiveInfinity, ScalarType.Float64);
        var offDiagonal = ones(n, n, ScalarType.Float64) - eye(n, dtype: ScalarType.Float64);
        Tensor conditional = zeros(n, n, ScalarType.Float64);
        for (var step = 0; step < 100; step++)
        {
            conditional = (-distances * beta).exp() * offDiagonal;
            var sums = conditional.sum(1, keepdim: true).clamp_min(1e-300);
            conditional = conditional / sums;
            var entropy = sums.log() + (beta * (distances * conditional).sum(1, keepdim: true));
            var tooFlat = entropy > target;

            // Too flat (too many neighbours): a larger beta narrows the Gaussian; too peaked: a smaller one.
            lo = where(tooFlat, beta, lo);
            hi = where(tooFlat, hi, beta);
            beta = where(tooFlat, where(hi.isinf(), beta * 2, (beta + hi) / 2), where(lo.isinf(), beta / 2, (beta + lo) / 2));
            if ((entropy - target).abs().max().item<double>() < 1e-5)
            {
                break;
            }
        }

        return ((conditional + conditional.T) / (2.0 * n)).clamp_min(1e-12);
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

    private static Tensor Gradient(Tensor p, Tensor y, double exaggeration)
    {
        var n = y.shape[0];
        var numerator = 1 / (1 + SquaredDistances(y));
        numerator = WithDiagonal(numerator, 0);
        var q = (numerator / numerator.sum()).clamp_min(1e-12);
        var weights = ((p * exaggeration) - q) * numerator;
        return 4 * ((weights.sum(1, keepdim: true) * y) - weights.matmul(y));
    }
}
