namespace DTSKD.Core.Tests;

/// <summary>
/// An independent double-precision transcription of the reference formulas (spec §3-§6), on plain arrays,
/// to check the tensor code against.
/// </summary>
internal static class Reference
{
    public const double Eps = 1e-7;

    public static double[][] Softmax(double[][] z, double t = 1)
    {
        return z.Select(row =>
        {
            var m = row.Max() / t;
            var e = row.Select(v => Math.Exp((v / t) - m)).ToArray();
            var s = e.Sum();
            return e.Select(v => v / s).ToArray();
        }).ToArray();
    }

    public static double[][] LogSoftmax(double[][] z, double t = 1) =>
        Softmax(z, t).Select(r => r.Select(v => Math.Log(v)).ToArray()).ToArray();

    /// <summary>T² Σ q (log q − log_softmax(s/T)) / B with q = target + eps.</summary>
    public static double SoftTargetKl(double[][] student, double[][] target, double t)
    {
        var logS = LogSoftmax(student, t);
        double sum = 0;
        for (var b = 0; b < student.Length; b++)
        {
            for (var c = 0; c < student[b].Length; c++)
            {
                var q = target[b][c] + Eps;
                sum += q * (Math.Log(q) - logS[b][c]);
            }
        }

        return t * t * sum / student.Length;
    }

    public static double Kl(double[][] student, double[][] teacher, double t) =>
        SoftTargetKl(student, Softmax(teacher, t), t);

    public static double CrossEntropy(double[][] z, long[] labels)
    {
        var logS = LogSoftmax(z);
        return -labels.Select((y, b) => logS[b][y]).Sum() / z.Length;
    }

    public static double[][] OneHot(long[] labels, int classes) =>
        labels.Select(y => Enumerable.Range(0, classes).Select(c => c == y ? 1.0 : 0.0).ToArray()).ToArray();

    public static double[][] Mix(double alpha, double[][] oneHot, double[][] history) =>
        oneHot.Select((row, b) => row.Select((v, c) => (alpha * v) + ((1 - alpha) * history[b][c])).ToArray()).ToArray();

    public static double CosineAlpha(double max, double min, int e, int total) =>
        min + ((max - min) * (1 + Math.Cos(Math.PI * e / total)) / 2);
}
