using System.Globalization;
using System.Text;
using DTSKD.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Benchmarks;

/// <summary>
/// The historical teacher at a data set's scale (ImageNet-1k by default: N = 1,281,167, C = 1,000, 4 heads): the memory of
/// each storage mode, and the time of a step's read and update of 128 random rows. Modes that would not fit in half of
/// this machine's free memory are computed, not allocated.
/// </summary>
public static class HistoryScale
{
    public static readonly (string Name, HistoryStorage Storage)[] Modes =
    [
        ("dense float32", HistoryStorage.Dense),
        ("dense float16", new HistoryStorage { ValueType = ScalarType.Float16 }),
        ("top-20 float16", HistoryStorage.TopKFloat16(20)),
        ("top-10 float16", HistoryStorage.TopKFloat16(10)),
        ("top-5 float16", HistoryStorage.TopKFloat16(5)),
        ("top-5 float16, host memory", HistoryStorage.TopKFloat16(5, onHost: true)),
    ];

    /// <summary>One row per mode: name, bytes, and the median (fastest-slowest) read+update time, or null when not allocated.</summary>
    public static List<(string Name, long Bytes, Timing? Timing)> Measure(Device device, int samples, int classes, int heads, int warmup, int runs)
    {
        var free = AvailableBytes();
        var rows = new List<(string, long, Timing?)>();
        foreach (var (name, storage) in Modes)
        {
            var bytes = storage.BytesFor(samples, classes, heads);
            if (bytes > free / 2)
            {
                rows.Add((name, bytes, null));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}: {bytes / 1e9:F2} GB (computed; not allocated on this machine)"));
                continue;
            }

            using var history = new HistoricalTeacher(samples, classes, heads, device, storage);
            Check(history.MemoryBytes, bytes);
            using var pool = randperm(samples, ScalarType.Int64, generator: new Generator(42)).DetachFromDisposeScope();
            var call = 0;
            using var logits = randn([heads, 128, classes], device: device).DetachFromDisposeScope();
            using var output = new MultiBranchOutput(logits[0].DetachFromDisposeScope(), [.. Enumerable.Range(1, heads - 1).Select(h => logits[h].DetachFromDisposeScope())]);
            using var labels = randint(0, classes, [128], ScalarType.Int64, device).DetachFromDisposeScope();
            var timing = Timing.Measure(name, warmup, runs, () =>
            {
                using var scope = NewDisposeScope();
                var idx = pool.narrow(0, (call++ * 128) % (samples - 128), 128).to(device);
                _ = history.Terms(output, labels, idx, 0.5);
                if (device.type == DeviceType.CUDA)
                {
                    cuda.synchronize();
                }
            });
            rows.Add((name, bytes, timing));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}: {bytes / 1e9:F3} GB, {timing.MedianMs:F2} ms per read+update of 128 rows"));
        }

        return rows;
    }

    public static string Table(List<(string Name, long Bytes, Timing? Timing)> rows, double? stepMs)
    {
        var text = new StringBuilder();
        text.AppendLine(stepMs is null
            ? "| storage | memory | read + update per step of 128, ms |"
            : "| storage | memory | read + update per step of 128, ms | share of a resnet18_dtskd training step |");
        text.AppendLine(stepMs is null ? "| --- | --- | --- |" : "| --- | --- | --- | --- |");
        foreach (var (name, bytes, timing) in rows)
        {
            var memory = bytes >= 1e9 ? string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e9:F2} GB") : string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e6:F0} MB");
            var time = timing is null ? "not allocated (computed size)" : string.Create(CultureInfo.InvariantCulture, $"{timing.MedianMs:F2} ({timing.MinMs:F2}-{timing.MaxMs:F2})");
            var share = stepMs is null ? string.Empty : timing is null ? " - |" : string.Create(CultureInfo.InvariantCulture, $" {100 * timing.MedianMs / stepMs:F2}% |");
            text.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {memory} | {time} |{share}");
        }

        return text.ToString();
    }

    private static long AvailableBytes()
    {
        var line = File.Exists("/proc/meminfo") ? File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemAvailable:", StringComparison.Ordinal)) : null;
        return line is null ? 4L << 30 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    private static void Check(long actual, long expected)
    {
        if (actual != expected)
        {
            throw new InvalidOperationException($"HistoryStorage.BytesFor says {expected} bytes but the teacher holds {actual}.");
        }
    }
}
