namespace DTSKD.Core.Tests;

internal static class TestTensors
{
    public static double[][] RandomLogits(Random rng, int batch, int classes, double scale = 3.0) =>
        Enumerable.Range(0, batch)
            .Select(_ => Enumerable.Range(0, classes).Select(_ => (rng.NextDouble() - 0.5) * 2 * scale).ToArray())
            .ToArray();

    public static double[][] RandomDistribution(Random rng, int batch, int classes)
    {
        return Enumerable.Range(0, batch).Select(_ =>
        {
            var w = Enumerable.Range(0, classes).Select(_ => rng.NextDouble() + 1e-3).ToArray();
            var s = w.Sum();
            return w.Select(v => v / s).ToArray();
        }).ToArray();
    }

    public static Tensor ToTensor(double[][] rows, ScalarType dtype = ScalarType.Float32, bool requiresGrad = false)
    {
        var flat = rows.SelectMany(r => r).ToArray();
        using var t = tensor(flat, [rows.Length, rows[0].Length], ScalarType.Float64);
        return t.to(dtype).requires_grad_(requiresGrad);
    }

    public static double[][] ToArrays(Tensor t)
    {
        using var d = t.detach().to(ScalarType.Float64).cpu().contiguous();
        var flat = d.data<double>().ToArray();
        var cols = (int)t.shape[1];
        return Enumerable.Range(0, (int)t.shape[0]).Select(r => flat.Skip(r * cols).Take(cols).ToArray()).ToArray();
    }

    public static long LiveTensors => DisposeScopeManager.Statistics.ThreadTotalLiveCount;
}
