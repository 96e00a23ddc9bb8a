using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// t-SNE's input similarities as Barnes-Hut t-SNE computes them (scikit-learn's <c>TSNE</c> default, openTSNE): each
/// point's 3 x perplexity + 1 nearest neighbours (exact, found a block of rows at a time, so memory grows with n x block,
/// never n x n), Gaussian weights calibrated to the perplexity by bisection, symmetrised and normalised to sum to 1.
/// </summary>
internal sealed class NeighbourAffinities
{
    private const int Block = 256;

    private NeighbourAffinities(int[] rowStart, int[] columns, double[] values) => (RowStart, Columns, Values) = (rowStart, columns, values);

    /// <summary>Where each row's entries start in <see cref="Columns"/> and <see cref="Values"/> (n + 1 entries).</summary>
    public int[] RowStart { get; }

    /// <summary>The neighbour of each entry.</summary>
    public int[] Columns { get; }

    /// <summary>The joint probability of each entry; all of them sum to 1.</summary>
    public double[] Values { get; }

    /// <summary>The neighbours to keep for a perplexity: 3 x perplexity + 1, at most n - 1.</summary>
    public static int NeighbourCount(int n, double perplexity) => Math.Min(n - 1, (int)((3 * perplexity) + 1));

    /// <summary>Computes the affinities of the rows of <paramref name="x"/> (float64 on the CPU).</summary>
    public static NeighbourAffinities Compute(Tensor x, double perplexity)
    {
        var n = (int)x.shape[0];
        var k = NeighbourCount(n, perplexity);
        var (indices, distances) = Nearest(x, k);
        var conditional = Conditional(distances, n, k, perplexity);

        // P = (P_cond + P_condᵀ) / sum: a symmetric sparse matrix, each row's entries gathered by neighbour.
        var rows = new Dictionary<int, double>[n];
        for (var i = 0; i < n; i++)
        {
            rows[i] = new Dictionary<int, double>(2 * k);
        }

        for (var i = 0; i < n; i++)
        {
            for (var m = 0; m < k; m++)
            {
                var (j, p) = (indices[(i * k) + m], conditional[(i * k) + m]);
                rows[i][j] = rows[i].GetValueOrDefault(j) + p;
                rows[j][i] = rows[j].GetValueOrDefault(i) + p;
            }
        }

        var total = rows.Sum(r => r.Values.Sum());
        var start = new int[n + 1];
        for (var i = 0; i < n; i++)
        {
            start[i + 1] = start[i] + rows[i].Count;
        }

        var columns = new int[start[n]];
        var values = new double[start[n]];
        for (var i = 0; i < n; i++)
        {
            var at = start[i];
            foreach (var (j, p) in rows[i].OrderBy(e => e.Key))
            {
                (columns[at], values[at]) = (j, Math.Max(p / total, double.Epsilon));
                at++;
            }
        }

        return new NeighbourAffinities(start, columns, values);
    }

    /// <summary>Each point's k nearest other points and their squared distances, a block of rows at a time.</summary>
    private static (int[] Indices, double[] Distances) Nearest(Tensor x, int k)
    {
        var n = (int)x.shape[0];
        var indices = new int[n * k];
        var distances = new double[n * k];
        using var noGrad = no_grad();
        using var norms = x.pow(2).sum(1);
        for (var from = 0; from < n; from += Block)
        {
            using var scope = NewDisposeScope();
            var rows = Math.Min(Block, n - from);
            var block = x.narrow(0, from, rows);
            var d = (norms.narrow(0, from, rows).unsqueeze(1) + norms.unsqueeze(0) - (2 * block.matmul(x.T))).clamp_min(0);

            // A point is not its own neighbour.
            var self = arange(from, from + rows).unsqueeze(1).eq(arange(n).unsqueeze(0));
            var (values, order) = d.masked_fill(self, double.PositiveInfinity).topk(k, dim: 1, largest: false, sorted: true);
            var v = values.contiguous().data<double>().ToArray();
            var o = order.contiguous().data<long>().ToArray();
            for (var e = 0; e < v.Length; e++)
            {
                (distances[(from * k) + e], indices[(from * k) + e]) = (v[e], (int)o[e]);
            }
        }

        return (indices, distances);
    }

    /// <summary>Each row's Gaussian over its neighbours, its width found by bisection so its entropy is log(perplexity).</summary>
    private static double[] Conditional(double[] distances, int n, int k, double perplexity)
    {
        var target = Math.Log(perplexity);
        var result = new double[n * k];
        Parallel.For(0, n, i =>
        {
            var row = distances.AsSpan(i * k, k);
            var p = result.AsSpan(i * k, k);
            double beta = 1, lo = double.NegativeInfinity, hi = double.PositiveInfinity;
            for (var step = 0; step < 100; step++)
            {
                var sum = 0.0;
                for (var m = 0; m < k; m++)
                {
                    p[m] = Math.Exp(-row[m] * beta);
                    sum += p[m];
                }

                sum = Math.Max(sum, 1e-300);
                var weighted = 0.0;
                for (var m = 0; m < k; m++)
                {
                    p[m] /= sum;
                    weighted += row[m] * p[m];
                }

                var entropy = Math.Log(sum) + (beta * weighted);
                if (Math.Abs(entropy - target) < 1e-5)
                {
                    break;
                }

                // Too flat (too many neighbours): a larger beta narrows the Gaussian; too peaked: a smaller one.
                if (entropy > target)
                {
                    lo = beta;
                    beta = double.IsPositiveInfinity(hi) ? beta * 2 : (beta + hi) / 2;
                }
                else
                {
                    hi = beta;
                    beta = double.IsNegativeInfinity(lo) ? beta / 2 : (beta + lo) / 2;
                }
            }
        });
        return result;
    }
}
