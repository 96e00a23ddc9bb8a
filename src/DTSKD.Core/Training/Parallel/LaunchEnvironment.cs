using System.Globalization;

namespace DTSKD.Core.Training;

/// <summary>
/// The rank and world size a launcher gives a process through its environment: Open MPI's <c>mpirun</c>
/// (<c>OMPI_COMM_WORLD_RANK</c>/<c>SIZE</c>), MPICH's and Intel MPI's (<c>PMI_RANK</c>/<c>PMI_SIZE</c>), Slurm's <c>srun</c>
/// (<c>SLURM_PROCID</c>/<c>SLURM_NTASKS</c>); the Kubernetes MPI Operator starts <c>mpirun</c>, so its ranks read as Open
/// MPI's or MPICH's.
/// </summary>
public sealed record LaunchEnvironment(int Rank, int WorldSize, string Source)
{
    private static readonly (string Rank, string Size, string Source)[] Launchers =
    [
        ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "Open MPI"),
        ("PMI_RANK", "PMI_SIZE", "PMI (MPICH, Intel MPI)"),
        ("SLURM_PROCID", "SLURM_NTASKS", "Slurm"),
    ];

    /// <summary>The first launcher whose variables are set, or <c>null</c> when none is (a process started by hand).</summary>
    /// <param name="environment">The variables to read (default: this process's).</param>
    /// <exception cref="FormatException">A launcher's variables are set but are not a rank below a positive size; the message names them.</exception>
    public static LaunchEnvironment? Detect(IReadOnlyDictionary<string, string?>? environment = null)
    {
        string? Get(string name) => environment is null ? Environment.GetEnvironmentVariable(name) : environment.GetValueOrDefault(name);
        foreach (var (rankName, sizeName, source) in Launchers)
        {
            var (rank, size) = (Get(rankName), Get(sizeName));
            if (rank is null && size is null)
            {
                continue;
            }

            if (!int.TryParse(rank, NumberStyles.None, CultureInfo.InvariantCulture, out var r)
                || !int.TryParse(size, NumberStyles.None, CultureInfo.InvariantCulture, out var s) || s < 1 || r >= s)
            {
                throw new FormatException($"{rankName}='{rank}' and {sizeName}='{size}' ({source}) are not a rank from 0 below a world size of 1 or more.");
            }

            return new LaunchEnvironment(r, s, source);
        }

        return null;
    }
}
