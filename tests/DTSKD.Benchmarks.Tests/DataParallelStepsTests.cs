namespace DTSKD.Benchmarks.Tests;

/// <summary><c>steps --ranks 2</c>: one process against two MPI ranks, and the bytes per step against the formula.</summary>
public sealed class DataParallelStepsTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-dp-bench-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public async Task Two_ranks_hand_mpi_every_gradient_once_per_step_as_the_formula_says()
    {
        var report = Path.Combine(_dir.FullName, "data-parallel.md");
        var (code, output) = await BenchProcess.Run(["steps", "--ranks", "2", "--modes", "bf16", "--steps", "2", "--batch-size", "16", "--output", report]);
        code.Should().Be(0, output);
        var rows = File.ReadAllLines(report).Where(l => l.StartsWith("| resnet18_dtskd |", StringComparison.Ordinal)).ToList();
        rows.Should().HaveCount(2);
        rows[0].Should().Contain("| 1 process x 2 threads | 16 |");
        var cells = rows[1].Split('|', StringSplitOptions.TrimEntries);
        cells[3].Should().Be("2 processes x 1 thread");
        cells[4].Should().Be("8 per rank");

        // Every trainable parameter's float32 gradient, once per step: measured equals P x 4.
        var measured = cells[8];
        cells[9].Should().StartWith(measured + " (P = ").And.EndWith($"ring traffic {measured}", "with 2 ranks the ring moves 2 (R - 1) / R = 1 buffer per rank");
    }

    [Fact]
    public async Task A_batch_that_does_not_split_over_the_ranks_is_one_line()
    {
        var (code, output) = await BenchProcess.Run(["steps", "--ranks", "2", "--batch-size", "15"]);
        code.Should().Be(2);
        output.Trim().Should().Be("error: --batch-size 15 does not split evenly over --ranks 2; give a multiple of 2.");
    }
}
