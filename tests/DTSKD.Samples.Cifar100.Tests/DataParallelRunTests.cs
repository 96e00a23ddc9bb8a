using System.Diagnostics;
using System.Text.Json;

namespace DTSKD.Samples.Cifar100.Tests;

/// <summary>The sample under mpirun: one process per rank, rank 0 writing the run folder; what a launcher gets wrong is named.</summary>
public sealed class DataParallelRunTests : SampleTestBase
{
    private string Experiments => Path.Combine(Dir.FullName, "runs");

    private string[] Tiny(int epochs, int batch = 32) =>
    [
        "--data-type", "fashion-mnist", "--epochs", $"{epochs}", "--train-limit", "256", "--test-limit", "200", "--base-width", "16", "--neck-width", "16",
        "--batch-size", $"{batch}", "--threads", "1", "--no-tensorboard", "--experiments-dir", Experiments, "--experiments-name", "dp",
    ];

    [Fact]
    public async Task Two_ranks_train_a_run_that_rank_0_alone_writes_and_only_two_ranks_resume()
    {
        var (code, output) = await Mpirun(2, Tiny(1));
        code.Should().Be(0, output);
        output.Should().MatchRegex(@"MPI \(Open MPI v\d+\.\d+\.\d+\), 2 ranks, batch 16 per rank");
        output.Split('\n').Count(l => l.StartsWith("Done:", StringComparison.Ordinal)).Should().Be(1, "rank 1 is silent: rank 0 speaks for the run");
        var run = Path.Combine(Experiments, "dp");
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "config.json"))))
        {
            config.RootElement.GetProperty("world-size-used").GetInt32().Should().Be(2);
            config.RootElement.TryGetProperty("world-size", out _).Should().BeFalse("--world-size describes the invocation, not the run");
        }

        File.ReadAllLines(Path.Combine(run, "metrics.csv")).Should().HaveCount(2, "one header and one epoch, written once");
        Directory.GetFiles(run, "crash-*").Should().BeEmpty();

        var (alone, _, errors) = await RunProcess(["--resume", run, "--epochs", "2"]);
        alone.Should().Be(Sample.Failed);
        errors.Trim().Should().EndWith("with 1 rank (the run trained with 2: each rank's historical teacher holds its own samples' rows; resume with 2).").And.NotContain("\n");

        (code, output) = await Mpirun(2, ["--resume", run, "--epochs", "2", "--threads", "1"]);
        code.Should().Be(0, output);
        output.Should().Contain($"Resuming '{run}' at epoch 2, step 0.");
        File.ReadAllLines(Path.Combine(run, "metrics.csv")).Should().HaveCount(3);
    }

    [Fact]
    public async Task Synchronised_batch_norms_are_said_recorded_and_kept_by_a_resume()
    {
        var (code, output) = await Mpirun(2, [.. Tiny(1), "--sync-batch-norm"]);
        code.Should().Be(0, output);
        output.Should().Contain("2 ranks, batch 16 per rank, batch norms over all ranks");
        var run = Path.Combine(Experiments, "dp");
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "config.json"))))
        {
            config.RootElement.GetProperty("sync-batch-norm").GetBoolean().Should().BeTrue();
        }

        (code, output) = await Mpirun(2, ["--resume", run, "--epochs", "2", "--threads", "1"]);
        code.Should().Be(0, output);
        output.Should().Contain("batch norms over all ranks", "the run's config.json keeps the setting");
    }

    [Theory]
    [InlineData(3, 32, "error: rank {0} of 2: --world-size 3: the launcher (Open MPI) started 2 ranks.")]
    [InlineData(2, 33, "error: rank {0} of 2: --batch-size 33 is the whole step's and does not split evenly over 2 ranks; give a multiple of 2.")]
    public async Task What_does_not_fit_the_launcher_s_ranks_is_named_by_every_rank_and_nothing_is_written(int worldSize, int batch, string expected)
    {
        var (code, output) = await Mpirun(2, [.. Tiny(1, batch), "--world-size", $"{worldSize}"]);
        code.Should().NotBe(0);
        output.Should().Contain(string.Format(null, expected, 0)).And.Contain(string.Format(null, expected, 1));
        Directory.Exists(Experiments).Should().BeFalse();
    }

    [Fact]
    public async Task A_run_whose_own_batch_does_not_split_over_the_ranks_is_refused_on_resume_by_every_rank_and_left_as_it_was()
    {
        // Trained alone with an odd batch; its config.json, not the command line, gives the resumed run's batch.
        var (alone, _, errors) = await RunProcess(Tiny(1, batch: 33));
        alone.Should().Be(Sample.Ok, errors);
        var run = Path.Combine(Experiments, "dp");
        var before = File.ReadAllBytes(Path.Combine(run, "last.ckpt"));

        var (code, output) = await Mpirun(2, ["--resume", run, "--epochs", "2", "--threads", "1"]);

        code.Should().NotBe(0);
        foreach (var rank in new[] { 0, 1 })
        {
            output.Should().Contain($"error: rank {rank} of 2: --batch-size 33 is the whole step's and does not split evenly over 2 ranks; give a multiple of 2.");
        }

        File.ReadAllLines(Path.Combine(run, "metrics.csv")).Should().HaveCount(2, "nothing of the run changed");
        File.ReadAllBytes(Path.Combine(run, "last.ckpt")).Should().Equal(before);
        Directory.GetFiles(run, "crash-*").Should().BeEmpty();
    }

    [Fact]
    public async Task Mpich_s_launcher_gets_mpich_s_library_and_a_library_of_another_mpi_is_named_with_the_way_out()
    {
        var (code, output) = await Mpirun(2, Tiny(1), mpich: true);
        code.Should().Be(0, output);
        output.Should().MatchRegex(@"MPI \(MPICH \d+\.\d+\.\d+\), 2 ranks, batch 16 per rank");

        // Open MPI's library forced under MPICH's launcher: each process would train alone.
        var other = Tiny(1);
        other[Array.IndexOf(other, "--experiments-name") + 1] = "other";
        (code, output) = await Mpirun(2, other, mpich: true, library: "libmpi.so.40");
        code.Should().NotBe(0);
        foreach (var rank in new[] { 0, 1 })
        {
            output.Should().MatchRegex($@"error: rank {rank} of 2: MPI made this process rank 0 of 1, but the launcher's environment \(PMI \(MPICH, Intel MPI\)\) says rank {rank} of 2: the launcher and the MPI library the sample found \(MPI \(Open MPI v[\d.]+\)\) are not the same installation; set DTSKD_MPI_LIBRARY");
        }

        Directory.Exists(Path.Combine(Experiments, "other")).Should().BeFalse();
    }

    private static async Task<(int Code, string Output)> Mpirun(int ranks, string[] args, bool mpich = false, string? library = null)
    {
        var sample = Path.Combine(AppContext.BaseDirectory, "DTSKD.Samples.Cifar100.dll");
        var info = mpich
            ? new ProcessStartInfo(
                File.Exists("/usr/bin/mpiexec.mpich") ? "/usr/bin/mpiexec.mpich" : throw new InvalidOperationException("MPICH is not installed: its tests need it beside Open MPI (Debian/Ubuntu: sudo apt-get install mpich)."),
                ["-n", $"{ranks}", "dotnet", sample, .. args])
            : new ProcessStartInfo(
                new[] { "/usr/bin/mpirun.openmpi", "/usr/bin/mpirun", "/usr/local/bin/mpirun" }.FirstOrDefault(File.Exists)
                    ?? throw new InvalidOperationException("mpirun is not installed: the data-parallel tests need Open MPI (Debian/Ubuntu: sudo apt-get install openmpi-bin libopenmpi-dev)."),
                ["--allow-run-as-root", "--oversubscribe", "-np", $"{ranks}", "dotnet", sample, .. args]);
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        if (library is not null)
        {
            info.Environment["DTSKD_MPI_LIBRARY"] = library;
        }
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"mpirun ran past 3 minutes: {await output}{await errors}");
        }

        // Open MPI gives each rank a terminal: .NET's keypad escapes, and lines wrapped by width, are taken off.
        var text = System.Text.RegularExpressions.Regex.Replace(await output + await errors, @"\x1b(\[[?0-9;]*[A-Za-z]|[=>])", string.Empty);
        return (process.ExitCode, text);
    }
}
