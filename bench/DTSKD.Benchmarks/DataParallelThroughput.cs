using System.Diagnostics;
using System.Globalization;
using System.Text;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using static TorchSharp.torch;

namespace DTSKD.Benchmarks;

/// <summary>
/// <c>steps --ranks R</c>: one process with R threads against R MPI processes (mpirun) of one thread each, the same model,
/// mode and step batch (split over the ranks), alternating; images per second, and per step the gradient all-reduce's
/// time and bytes against docs/scaling.md's ring formula.
/// </summary>
public static class DataParallelThroughput
{
    private const string RankLine = "| rank-0 |";
    private static readonly string[] MpirunPaths = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"];

    /// <summary>Runs the comparison for every (model, mode).</summary>
    public static int Run(string[] models, string[] modes, int batch, int steps, bool referenceWidth, int imageSize, int ranks, int rounds, bool syncBatchNorm, string? output, string command)
    {
        var inv = CultureInfo.InvariantCulture;
        if (batch % ranks != 0)
        {
            Console.Error.WriteLine($"error: --batch-size {batch} does not split evenly over --ranks {ranks}; give a multiple of {ranks}.");
            return 2;
        }

        var mpirun = MpirunPaths.FirstOrDefault(File.Exists);
        if (mpirun is null)
        {
            Console.Error.WriteLine("error: --ranks needs Open MPI's mpirun (Debian/Ubuntu: sudo apt-get install openmpi-bin libopenmpi-dev).");
            return 2;
        }

        var threads = get_num_threads();
        set_num_threads(ranks);
        var machine = MachineInfo.Describe(CPU);
        Console.WriteLine($"Machine: {machine}");
        var width = referenceWidth ? new MultiBranchModelOptions() : new MultiBranchModelOptions { BaseWidth = 16, NeckWidth = 128 };
        var rows = new List<string>();
        foreach (var (name, mode) in models.SelectMany(m => modes.Select(mode => (m, mode))))
        {
            long parameters;
            using (var model = MultiBranchModels.Create(name, new MultiBranchModelOptions { BaseWidth = width.BaseWidth, NeckWidth = width.NeckWidth }))
            {
                parameters = model.parameters().Sum(p => p.numel());
            }

            var (one, many, reduceMs, reduceBytes) = (new List<double>(), new List<double>(), new List<double>(), new List<double>());
            var (synced, syncedMs, syncedBytes) = (new List<double>(), new List<double>(), new List<double>());
            for (var round = 0; round < Math.Max(1, rounds); round++)
            {
                // One LibTorch process at a time: the in-process side, then the ranks (this process waits, idle).
                set_num_threads(ranks);
                one.Add(StepThroughput.Measure(CPU, name, mode, "cifar", batch, steps, width, imageSize));
                double ms, allReduceMs, bytes;
                try
                {
                    (ms, allReduceMs, bytes) = Ranks(mpirun, ranks, name, mode, batch / ranks, steps, referenceWidth, imageSize, syncBatchNorm: false);
                    if (syncBatchNorm)
                    {
                        var (s, sMs, sBytes) = Ranks(mpirun, ranks, name, mode, batch / ranks, steps, referenceWidth, imageSize, syncBatchNorm: true);
                        (synced, syncedMs, syncedBytes) = ([.. synced, s], [.. syncedMs, sMs], [.. syncedBytes, sBytes]);
                    }
                }
                catch (InvalidOperationException ex)
                {
                    Console.Error.WriteLine($"error: {ex.Message}");
                    return 1;
                }

                many.Add(ms);
                reduceMs.Add(allReduceMs);
                reduceBytes.Add(bytes);
                var syncedText = syncBatchNorm ? string.Create(inv, $"; synchronised batch norms {synced[^1]:F0} ms/step, all-reduce {syncedMs[^1]:F0} ms and {syncedBytes[^1] / 1e6:F2} MB") : string.Empty;
                Console.WriteLine(string.Create(inv, $"round {round + 1}: {name} {mode}: 1 x {ranks} threads {one[^1]:F0} ms/step; {ranks} x 1 thread {ms:F0} ms/step, all-reduce {allReduceMs:F0} ms and {bytes / 1e6:F2} MB per step{syncedText}"));
            }

            // The ring all-reduce sends and receives 2 (R - 1) / R of the buffer per rank; the buffer is every gradient in float32.
            var ring = 2.0 * (ranks - 1) / ranks * parameters * 4;
            string Range(List<double> v, string format, double scale = 1) =>
                v.Min() == v.Max() ? (v[0] * scale).ToString(format, inv) : string.Create(inv, $"{(v.Min() * scale).ToString(format, inv)}-{(v.Max() * scale).ToString(format, inv)}");
            rows.Add(string.Create(inv, $"| {name} | {mode} | 1 process x {ranks} threads | {batch} | {Range(one, "F0")} | {batch * 1000.0 / one.Average():F0} | - | - | - |"));
            rows.Add(string.Create(inv, $"| {name} | {mode} | {ranks} processes x 1 thread | {batch / ranks} per rank | {Range(many, "F0")} | {batch * 1000.0 / many.Average():F0} | {Range(reduceMs, "F0")} | {Range(reduceBytes, "F2", 1e-6)} | {parameters * 4 / 1e6:F2} (P = {parameters:N0}); ring traffic {ring / 1e6:F2} |"));
            if (syncBatchNorm)
            {
                rows.Add(string.Create(inv, $"| {name} | {mode} | {ranks} processes x 1 thread, batch norms synchronised | {batch / ranks} per rank | {Range(synced, "F0")} | {batch * 1000.0 / synced.Average():F0} | {Range(syncedMs, "F0")} | {Range(syncedBytes, "F2", 1e-6)} | gradients as above, plus the batch norms' statistics |"));
            }
        }

        set_num_threads(threads);
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Measured on: {machine}; Open MPI (`{mpirun} -np {ranks}`).");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Command: `{command}`. Width {(referenceWidth ? "reference (64, neck 512)" : "16/128")}, 100 classes, {imageSize} px synthetic images, {steps} steps per epoch, the second epoch measured; the same step batch on both sides (split over the ranks), the sides alternating{(rounds > 1 ? $" for {rounds} rounds (a range is min-max)" : string.Empty)}. All-reduce time is rank 0's wait in the step's all-reduces (the gradient buckets', and the batch norms' where synchronised; the other rank's lag included); bytes are the float32 and float64 buffers handed to MPI per step, against P x 4 (docs/scaling.md's ring formula sends 2 (R - 1) / R of that per rank).");
        text.AppendLine();
        text.AppendLine("| model | mode | layout | batch | ms per step | images/s | all-reduce ms per step | all-reduce MB per step (measured) | formula MB |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var row in rows)
        {
            text.AppendLine(row);
        }

        Console.Write(text);
        if (output is not null)
        {
            BenchOutput.Write(output, text.ToString());
        }

        return 0;
    }

    /// <summary>One rank of the R-process side, started by mpirun (the hidden command <c>steps-rank</c>); rank 0 prints its figures.</summary>
    public static int Rank(string name, string mode, int batch, int steps, bool referenceWidth, int imageSize, bool syncBatchNorm)
    {
        set_num_threads(1);
        using var group = MpiProcessGroup.Start();
        var width = referenceWidth ? new MultiBranchModelOptions() : new MultiBranchModelOptions { BaseWidth = 16, NeckWidth = 128 };
        var counters = new Counters(group, steps);
        var ms = StepThroughput.Measure(CPU, name, mode, "cifar", batch, steps, width, imageSize, group, counters, syncBatchNorm);
        if (group.Rank == 0)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{RankLine} {ms:R} | {counters.Milliseconds / steps:R} | {(double)counters.Bytes / steps:R} |"));
        }

        return 0;
    }

    private static (double Ms, double AllReduceMs, double Bytes) Ranks(string mpirun, int ranks, string name, string mode, int batch, int steps, bool referenceWidth, int imageSize, bool syncBatchNorm)
    {
        var inv = CultureInfo.InvariantCulture;
        var self = Path.Combine(AppContext.BaseDirectory, "DTSKD.Benchmarks.dll");
        string[] arguments = ["--allow-run-as-root", "--oversubscribe", "-np", ranks.ToString(inv), "dotnet", self, "steps-rank", "--models", name, "--modes", mode,
            "--batch-size", batch.ToString(inv), "--steps", steps.ToString(inv), "--image-size", imageSize.ToString(inv), .. referenceWidth ? new[] { "--reference-width" } : [], .. syncBatchNorm ? new[] { "--sync-batch-norm" } : []];
        var info = new ProcessStartInfo(mpirun, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(info)!;
        var errors = process.StandardError.ReadToEndAsync();
        var lines = process.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.TrimEntries);
        process.WaitForExit();
        // mpirun gives each rank a terminal: the line may follow .NET's terminal escapes.
        var line = lines.FirstOrDefault(l => l.Contains(RankLine, StringComparison.Ordinal));
        if (process.ExitCode != 0 || line is null)
        {
            throw new InvalidOperationException($"mpirun -np {ranks} (steps-rank) failed with exit code {process.ExitCode}: {string.Join(' ', errors.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))}");
        }

        var cells = line[(line.IndexOf(RankLine, StringComparison.Ordinal) + RankLine.Length)..].Split('|', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(c => double.Parse(c, inv)).ToArray();
        return (cells[0], cells[1], cells[2]);
    }

    /// <summary>The group's all-reduce counters over the measured epoch's steps (after epoch 1's end, to epoch 2's last step).</summary>
    private sealed class Counters(MpiProcessGroup group, int steps) : TrainerCallback
    {
        private (long Bytes, TimeSpan Time) _start;

        public long Bytes { get; private set; }

        public double Milliseconds { get; private set; }

        public override void OnEpochEnd(Trainer trainer, EpochMetrics metrics)
        {
            if (metrics.Epoch == 0)
            {
                _start = (group.AllReducedBytes, group.AllReduceTime);
            }
        }

        public override void OnStepEnd(Trainer trainer, TrainingStep step)
        {
            if (step.Epoch == 1 && step.Step == steps - 1)
            {
                Bytes = group.AllReducedBytes - _start.Bytes;
                Milliseconds = (group.AllReduceTime - _start.Time).TotalMilliseconds;
            }
        }
    }
}
