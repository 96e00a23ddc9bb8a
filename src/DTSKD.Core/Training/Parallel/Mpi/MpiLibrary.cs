using System.Reflection;
using System.Runtime.InteropServices;

namespace DTSKD.Core.Training;

/// <summary>
/// The few calls of the MPI C library data-parallel training needs, bound at run time (DTSKD.Core has no MPI package
/// dependency: the library is the cluster's). Open MPI's handles are the addresses of its global objects
/// (<c>ompi_mpi_comm_world</c>, <c>ompi_mpi_float</c>...), MPICH's (and Intel MPI's) are integers fixed by its ABI;
/// both are read here. Collectives are the non-blocking forms (MPI-3), completed by polling, so every wait has a deadline.
/// </summary>
internal static unsafe class MpiLibrary
{
    private const int RtldNow = 2;
    private const int RtldGlobal = 0x100;

    // MPI_THREAD_SERIALIZED: every call comes from the training thread, one at a time.
    private const int ThreadSerialized = 2;

    private static readonly object Gate = new();
    private static Api? _api;

    /// <summary>The library's handles and entry points.</summary>
    internal sealed class Api
    {
        public required string Path { get; init; }

        public required bool OpenMpi { get; init; }

        public required nint CommWorld { get; init; }

        public required nint Float { get; init; }

        public required nint Double { get; init; }

        public required nint Byte { get; init; }

        public required nint Sum { get; init; }

        public required nint Max { get; init; }

        public required delegate* unmanaged<int*, nint*, int, int*, int> InitThread { get; init; }

        public required delegate* unmanaged<int*, int> Initialized { get; init; }

        public required delegate* unmanaged<int*, int> Finalized { get; init; }

        public required delegate* unmanaged<int> Finalize { get; init; }

        public required delegate* unmanaged<nint, int, int> Abort { get; init; }

        public required delegate* unmanaged<nint, int*, int> CommRank { get; init; }

        public required delegate* unmanaged<nint, int*, int> CommSize { get; init; }

        public required delegate* unmanaged<byte*, int*, int> LibraryVersion { get; init; }

        public required delegate* unmanaged<nint, nint, int, nint, nint, nint, nint*, int> Iallreduce { get; init; }

        public required delegate* unmanaged<nint, int, nint, int, nint, nint*, int> Ibcast { get; init; }

        public required delegate* unmanaged<nint, nint*, int> Ibarrier { get; init; }

        public required delegate* unmanaged<nint, int, nint, nint, int, nint, nint, nint*, int> Iallgather { get; init; }

        public required delegate* unmanaged<nint*, int*, nint, int> Test { get; init; }

        /// <summary>MPI_IN_PLACE.</summary>
        public nint InPlace => OpenMpi ? 1 : -1;

        /// <summary>MPI_STATUS_IGNORE: a null pointer in Open MPI, (MPI_Status*)1 in MPICH.</summary>
        public nint StatusIgnore => OpenMpi ? 0 : 1;
    }

    /// <summary>The library, loaded once: <c>DTSKD_MPI_LIBRARY</c> when set, else Open MPI's or MPICH's usual names, the launcher's MPI first.</summary>
    public static Api Load()
    {
        lock (Gate)
        {
            return _api ??= Open();
        }
    }

    private static Api Open()
    {
        // A machine may have both MPIs (Debian installs them side by side): the library must be the launcher's, or each
        // process starts as a singleton of its own. Hydra (MPICH's and Intel MPI's mpiexec) sets PMI_RANK; Open MPI's
        // mpirun sets OMPI_COMM_WORLD_RANK.
        var hydra = Environment.GetEnvironmentVariable("PMI_RANK") is not null && Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_RANK") is null;
        string[] candidates = Environment.GetEnvironmentVariable("DTSKD_MPI_LIBRARY") is { Length: > 0 } chosen
            ? [chosen]
            : hydra
                ? ["libmpich.so.12", "libmpi.so.12", "libmpi.so.40", "libmpi.so", "libmpi.dylib", "msmpi.dll"]
                : ["libmpi.so.40", "libmpi.so.12", "libmpi.so", "libmpich.so.12", "libmpi.dylib", "msmpi.dll"];
        foreach (var name in candidates)
        {
            // Open MPI's components are plugins that need libmpi's symbols in the global namespace; .NET loads locally.
            if (OperatingSystem.IsLinux())
            {
                DlOpen(name, RtldNow | RtldGlobal);
            }

            if (NativeLibrary.TryLoad(name, Assembly.GetExecutingAssembly(), DllImportSearchPath.SafeDirectories | DllImportSearchPath.AssemblyDirectory, out var handle)
                || NativeLibrary.TryLoad(name, out handle))
            {
                return Bind(name, handle);
            }
        }

        throw new DllNotFoundException(
            $"No MPI library was found (tried {string.Join(", ", candidates)}); install Open MPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev) or MPICH, or set DTSKD_MPI_LIBRARY to the library's path.");
    }

    private static Api Bind(string name, nint lib)
    {
        nint Function(string symbol) => NativeLibrary.TryGetExport(lib, "P" + symbol, out var p) || NativeLibrary.TryGetExport(lib, symbol, out p)
            ? p
            : throw new EntryPointNotFoundException($"The MPI library '{name}' has no {symbol}; DTSKD.Core needs MPI 3.0 or newer (non-blocking collectives).");
        var openMpi = NativeLibrary.TryGetExport(lib, "ompi_mpi_comm_world", out var world);
        nint Handle(string openMpiSymbol, int mpich) => openMpi ? NativeLibrary.GetExport(lib, openMpiSymbol) : mpich;
        return new Api
        {
            Path = name,
            OpenMpi = openMpi,
            CommWorld = openMpi ? world : 0x44000000,
            Float = Handle("ompi_mpi_float", 0x4c00040a),
            Double = Handle("ompi_mpi_double", 0x4c00080b),
            Byte = Handle("ompi_mpi_byte", 0x4c00010d),
            Sum = Handle("ompi_mpi_op_sum", 0x58000003),
            Max = Handle("ompi_mpi_op_max", 0x58000001),
            InitThread = (delegate* unmanaged<int*, nint*, int, int*, int>)Function("MPI_Init_thread"),
            Initialized = (delegate* unmanaged<int*, int>)Function("MPI_Initialized"),
            Finalized = (delegate* unmanaged<int*, int>)Function("MPI_Finalized"),
            Finalize = (delegate* unmanaged<int>)Function("MPI_Finalize"),
            Abort = (delegate* unmanaged<nint, int, int>)Function("MPI_Abort"),
            CommRank = (delegate* unmanaged<nint, int*, int>)Function("MPI_Comm_rank"),
            CommSize = (delegate* unmanaged<nint, int*, int>)Function("MPI_Comm_size"),
            LibraryVersion = (delegate* unmanaged<byte*, int*, int>)Function("MPI_Get_library_version"),
            Iallreduce = (delegate* unmanaged<nint, nint, int, nint, nint, nint, nint*, int>)Function("MPI_Iallreduce"),
            Ibcast = (delegate* unmanaged<nint, int, nint, int, nint, nint*, int>)Function("MPI_Ibcast"),
            Ibarrier = (delegate* unmanaged<nint, nint*, int>)Function("MPI_Ibarrier"),
            Iallgather = (delegate* unmanaged<nint, int, nint, nint, int, nint, nint, nint*, int>)Function("MPI_Iallgather"),
            Test = (delegate* unmanaged<nint*, int*, nint, int>)Function("MPI_Test"),
        };
    }

    /// <summary>Initialises MPI once per process (a launcher's environment tells it its rank); returns the provided thread level.</summary>
    public static void Initialise(Api api)
    {
        int initialised;
        Check(api.Initialized(&initialised), "MPI_Initialized");
        if (initialised != 0)
        {
            return;
        }

        int provided;
        Check(api.InitThread(null, null, ThreadSerialized, &provided), "MPI_Init_thread");
        if (provided < ThreadSerialized)
        {
            throw new InvalidOperationException($"The MPI library '{api.Path}' gives thread level {provided}; DTSKD.Core needs MPI_THREAD_SERIALIZED ({ThreadSerialized}).");
        }
    }

    /// <summary>The library's own name and version (MPI_Get_library_version), first line.</summary>
    public static string Version(Api api)
    {
        // MPI_MAX_LIBRARY_VERSION_STRING is 256 in Open MPI, 8192 in MPICH.
        var buffer = new byte[8192];
        int length;
        fixed (byte* p = buffer)
        {
            Check(api.LibraryVersion(p, &length), "MPI_Get_library_version");
        }

        var text = System.Text.Encoding.ASCII.GetString(buffer, 0, Math.Clamp(length, 0, buffer.Length)).Trim('\0', ' ', '\n');
        // Open MPI: "Open MPI v4.1.4, package: ..."; MPICH: "MPICH Version:\t4.0.2\nMPICH Release date: ...".
        var first = text.Split('\n', 2)[0].Split(',', 2)[0];
        return System.Text.RegularExpressions.Regex.Replace(first.Replace("Version:", string.Empty, StringComparison.Ordinal), @"\s+", " ").Trim();
    }

    public static void Check(int code, string call)
    {
        if (code != 0)
        {
            throw new IOException($"{call} failed with MPI error {code}.");
        }
    }

    [DllImport("libc", EntryPoint = "dlopen", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    private static extern nint DlOpenNative([MarshalAs(UnmanagedType.LPUTF8Str)] string file, int mode);

    private static void DlOpen(string file, int mode)
    {
        try
        {
            DlOpenNative(file, mode);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            // A libc without dlopen: NativeLibrary's own load is all there is.
        }
    }
}
