using System.CommandLine;
using DTSKD.Core.Training;
using Spectre.Console;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// The processes of a data-parallel run (docs/scaling.md): the launcher (<c>mpirun</c>, <c>srun</c>, an MPIJob) starts one
/// sample per rank and says in its environment which rank each is; each trains its share of every epoch, rank 0 alone
/// writes the run folder and speaks. Started by hand, the sample is one process.
/// </summary>
internal sealed class SampleRanks : IDisposable
{
    private readonly MpiProcessGroup? _mpi;

    private SampleRanks(MpiProcessGroup? mpi) => _mpi = mpi;

    /// <summary>The collectives the trainer uses: MPI's with several ranks, else null (one process).</summary>
    public IProcessGroup? Group => _mpi;

    /// <summary>This process's rank.</summary>
    public int Rank => _mpi?.Rank ?? 0;

    /// <summary>How many processes train the run.</summary>
    public int WorldSize => _mpi?.WorldSize ?? 1;

    /// <summary>Whether this process writes the run folder and prints progress.</summary>
    public bool Speaks => Rank == 0;

    /// <summary>The command line's options.</summary>
    internal sealed class Options
    {
        public Option<int?> Rank { get; } = new("--rank")
        {
            Description = "This process's rank in a data-parallel run: normally read from the launcher (mpirun's OMPI_COMM_WORLD_RANK, PMI_RANK, Slurm's SLURM_PROCID); given, it must agree with the launcher's.",
        };

        public Option<int?> WorldSize { get; } = SampleCommandLine.PositiveIfGiven(new Option<int?>("--world-size")
        {
            Description = "How many processes train the run (start them with mpirun -np N or srun; docs/scaling.md); normally read from the launcher. --batch-size is the whole step's, split over them.",
        });

        public Option<bool> SyncBatchNorm { get; } = new("--sync-batch-norm")
        {
            Description = "With several ranks: every batch norm normalises over all ranks' images of the step together (PyTorch's SyncBatchNorm), not each rank's own (the release, DistributedDataParallel). For small per-rank batches.",
        };

        public IEnumerable<Option> All => [Rank, WorldSize, SyncBatchNorm];

        public ExperimentConfig Read(ParseResult result, ExperimentConfig config) =>
            config with { Rank = result.GetValue(Rank), WorldSize = result.GetValue(WorldSize), SyncBatchNorm = result.GetValue(SyncBatchNorm) };
    }

    /// <summary>This process's place in the run: from the launcher's environment, checked against --rank and --world-size; or one line saying why not.</summary>
    public static (SampleRanks? Ranks, string? Error) Start(ExperimentConfig config)
    {
        LaunchEnvironment? launch;
        try
        {
            launch = LaunchEnvironment.Detect();
        }
        catch (FormatException ex)
        {
            return (null, $"the launcher's environment cannot be read: {ex.Message}");
        }

        var (rank, size, source) = (launch?.Rank ?? 0, launch?.WorldSize ?? 1, launch?.Source);
        var (ranks, error) = Start(config, rank, size, source);

        // With several ranks, each line says whose it is: the launcher merges every rank's output.
        return (ranks, error is null || size == 1 ? error : $"rank {rank} of {size}: {error}");
    }

    private static (SampleRanks? Ranks, string? Error) Start(ExperimentConfig config, int rank, int size, string? source)
    {
        if (config.WorldSize is { } wanted && wanted != size)
        {
            return (null, source is null
                ? $"--world-size {wanted}: no launcher started this process (none of OMPI_COMM_WORLD_SIZE, PMI_SIZE, SLURM_NTASKS is set); start the ranks with mpirun -np {wanted} (docs/scaling.md)."
                : $"--world-size {wanted}: the launcher ({source}) started {size} ranks.");
        }

        if (config.Rank is { } given && given != rank)
        {
            return (null, given < 0 || given >= size
                ? $"--rank {given}: ranks run from 0 below the world size ({size})."
                : $"--rank {given}: the launcher ({source ?? "none: one process"}) made this process rank {rank}.");
        }

        if (size == 1)
        {
            return (new SampleRanks(null), null);
        }

        // A resumed run's batch is its own, checked once its config.json is read (not the command line's default).
        if (!config.Resume && config.BatchSize % size != 0)
        {
            return (null, $"--batch-size {config.BatchSize} is the whole step's and does not split evenly over {size} ranks; give a multiple of {size}.");
        }

        try
        {
            var mpi = MpiProcessGroup.Start();
            if (mpi.Rank != rank || mpi.WorldSize != size)
            {
                var (found, foundRank, foundSize) = (mpi.Description.Split(", ", 2)[0], mpi.Rank, mpi.WorldSize);
                mpi.Dispose();
                return (null, $"MPI made this process rank {foundRank} of {foundSize}, but the launcher's environment ({source}) says rank {rank} of {size}: the launcher and the MPI library the sample found ({found}) are not the same installation; set DTSKD_MPI_LIBRARY to the launcher's library (for example libmpich.so.12 or libmpi.so.40).");
            }

            return (new SampleRanks(mpi), null);
        }
        catch (Exception ex) when (ex is DllNotFoundException or InvalidOperationException or EntryPointNotFoundException)
        {
            return (null, $"the launcher ({source}) started {size} ranks, but MPI cannot start here: {ex.Message}");
        }
    }

    /// <summary>Where this rank's progress goes: the console on rank 0, nowhere on the others (rank 0 speaks for the run).</summary>
    public IAnsiConsole Console(IAnsiConsole console) =>
        Speaks ? console : AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(TextWriter.Null) });

    /// <summary>Where this rank's one line of a failure goes: with several ranks, prefixed with the rank that says it.</summary>
    public TextWriter Errors(TextWriter errors) => WorldSize == 1 ? errors : new RankWriter(errors, $"rank {Rank} of {WorldSize}: ");

    /// <summary>Ends every rank's process now (after this rank's line): the others would otherwise wait at their next collective.</summary>
    public void Abort(int exitCode) => _mpi?.Abort(exitCode);

    /// <summary>Returns once every rank has called it (nothing with one process).</summary>
    public void Barrier() => _mpi?.Barrier();

    /// <inheritdoc />
    public void Dispose() => _mpi?.Dispose();

    /// <summary>Lines prefixed with the rank, so that the launcher's merged output says who said what.</summary>
    private sealed class RankWriter(TextWriter inner, string prefix) : TextWriter
    {
        public override System.Text.Encoding Encoding => inner.Encoding;

        public override void Write(char value) => inner.Write(value);

        public override void WriteLine(string? value) =>
            inner.WriteLine(value?.StartsWith("error: ", StringComparison.Ordinal) == true ? $"error: {prefix}{value[7..]}" : prefix + value);
    }
}
