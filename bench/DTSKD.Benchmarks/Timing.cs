using System.Diagnostics;

namespace DTSKD.Benchmarks;

/// <summary>Runs an action after warm-up a number of times and keeps the median, fastest and slowest run.</summary>
public sealed record Timing(string Name, double MedianMs, double MinMs, double MaxMs, int Runs)
{
    public static Timing Measure(string name, int warmup, int runs, Action action)
    {
        for (var i = 0; i < warmup; i++)
        {
            action();
        }

        var samples = new double[runs];
        for (var i = 0; i < runs; i++)
        {
            var clock = Stopwatch.StartNew();
            action();
            samples[i] = clock.Elapsed.TotalMilliseconds;
        }

        Array.Sort(samples);
        var median = runs % 2 == 1 ? samples[runs / 2] : (samples[(runs / 2) - 1] + samples[runs / 2]) / 2;
        return new Timing(name, median, samples[0], samples[^1], runs);
    }
}
