using System.Diagnostics;
using System.Globalization;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// The ranks of an MPI job (<c>mpirun</c>, Slurm's <c>srun</c>, Kubernetes' MPIJob) as a <see cref="IProcessGroup"/>:
/// MPI_COMM_WORLD of the cluster's own MPI library (Open MPI, MPICH), found at run time. Tensors on the CPU are reduced in
/// place; others go through a host copy. Every collective has a deadline (<see cref="Timeout"/>): a rank that died or
/// stopped calling makes the others throw <see cref="TimeoutException"/> instead of waiting forever.
/// </summary>
/// <remarks>
/// One per process: <see cref="Start"/> initialises MPI, <see cref="Dispose"/> finalises it. A rank that fails should call
/// <see cref="Abort"/>, which stops the whole job at once (the launcher ends every rank).
/// </remarks>
public sealed unsafe class MpiProcessGroup : IProcessGroup, IDisposable
{
    private static int _started;
    private readonly MpiLibrary.Api _api;
    private bool _disposed;

    private MpiProcessGroup(MpiLibrary.Api api, int rank, int size, string version, TimeSpan timeout)
    {
        (_api, Rank, WorldSize, Timeout) = (api, rank, size, timeout);
        Description = string.Create(CultureInfo.InvariantCulture, $"MPI ({version}), {size} rank{(size == 1 ? "" : "s")}");
    }

    /// <inheritdoc />
    public int Rank { get; }

    /// <inheritdoc />
    public int WorldSize { get; }

    /// <inheritdoc />
    public string Description { get; }

    /// <summary>How long one collective may wait for the other ranks before it throws.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>Bytes this rank has sent through <see cref="AllReduce"/>, for throughput reports.</summary>
    public long AllReducedBytes { get; private set; }

    /// <summary>Time spent in <see cref="AllReduce"/>, waiting included.</summary>
    public TimeSpan AllReduceTime { get; private set; }

    /// <summary>Initialises MPI in this process and joins MPI_COMM_WORLD.</summary>
    /// <param name="timeout">The deadline of every collective (default 5 minutes: long enough for a slow evaluation on another rank).</param>
    /// <exception cref="DllNotFoundException">No MPI library was found; the message says what to install.</exception>
    /// <exception cref="InvalidOperationException">MPI was already started by this class in this process.</exception>
    public static MpiProcessGroup Start(TimeSpan? timeout = null)
    {
        var deadline = timeout ?? TimeSpan.FromMinutes(5);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(deadline, TimeSpan.Zero, nameof(timeout));
        if (Interlocked.Exchange(ref _started, 1) == 1)
        {
            throw new InvalidOperationException("MPI is started once per process; use the MpiProcessGroup already started.");
        }

        var api = MpiLibrary.Load();
        MpiLibrary.Initialise(api);
        int rank, size;
        MpiLibrary.Check(api.CommRank(api.CommWorld, &rank), "MPI_Comm_rank");
        MpiLibrary.Check(api.CommSize(api.CommWorld, &size), "MPI_Comm_size");
        return new MpiProcessGroup(api, rank, size, MpiLibrary.Version(api), deadline);
    }

    /// <inheritdoc />
    public void AllReduce(Tensor values, ReduceOperation operation)
    {
        ArgumentNullException.ThrowIfNull(values);
        var type = values.dtype switch
        {
            ScalarType.Float32 => _api.Float,
            ScalarType.Float64 => _api.Double,
            _ => throw new ArgumentException($"AllReduce takes float32 or float64 tensors; got {values.dtype}.", nameof(values)),
        };
        var clock = Stopwatch.StartNew();
        OnHost(values, host =>
        {
            nint request;
            fixed (byte* data = host.bytes)
            {
                // MPI_IN_PLACE is (void*)1 in Open MPI and (void*)-1 in MPICH.
                MpiLibrary.Check(_api.Iallreduce(_api.InPlace, (nint)data, checked((int)host.numel()), type, _api.Sum, _api.CommWorld, &request), "MPI_Iallreduce");
                Wait(ref request, "all-reduce");
            }

            if (operation == ReduceOperation.Average)
            {
                host.div_(WorldSize);
            }
        });
        AllReducedBytes += values.numel() * values.element_size();
        AllReduceTime += clock.Elapsed;
    }

    /// <inheritdoc />
    public void Broadcast(Tensor values, int root)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentOutOfRangeException.ThrowIfNegative(root);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(root, WorldSize);
        OnHost(values, host =>
        {
            nint request;
            var bytes = host.bytes;
            fixed (byte* data = bytes)
            {
                MpiLibrary.Check(_api.Ibcast((nint)data, bytes.Length, _api.Byte, root, _api.CommWorld, &request), "MPI_Ibcast");
                Wait(ref request, "broadcast");
            }
        });
    }

    /// <inheritdoc />
    public void Barrier()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        nint request;
        MpiLibrary.Check(_api.Ibarrier(_api.CommWorld, &request), "MPI_Ibarrier");
        Wait(ref request, "barrier");
    }

    /// <inheritdoc />
    public double[] AllGather(double value)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var all = new double[WorldSize];
        fixed (double* p = all)
        {
            nint request;
            MpiLibrary.Check(_api.Iallgather((nint)(&value), 1, _api.Double, (nint)p, 1, _api.Double, _api.CommWorld, &request), "MPI_Iallgather");
            Wait(ref request, "all-gather");
        }

        return all;
    }

    /// <summary>Stops every rank of the job now (MPI_Abort), with <paramref name="exitCode"/>: what a rank that cannot go on calls.</summary>
    /// <param name="exitCode">The exit code the launcher reports.</param>
    public void Abort(int exitCode) => _api.Abort(_api.CommWorld, exitCode);

    /// <summary>Finalises MPI (every rank must call it: MPI_Finalize is collective).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        int finalized;
        if (_api.Finalized(&finalized) == 0 && finalized == 0)
        {
            _api.Finalize();
        }
    }

    /// <summary>Runs <paramref name="call"/> on a contiguous CPU view of <paramref name="values"/>, copying back when it was not one.</summary>
    private void OnHost(Tensor values, Action<Tensor> call)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (values.device_type == TorchSharp.DeviceType.CPU && values.is_contiguous())
        {
            call(values);
            return;
        }

        using var host = values.to(CPU).contiguous();
        call(host);
        values.copy_(host);
    }

    /// <summary>Completes a request by polling, so a missing rank is a timeout, not a hang.</summary>
    private void Wait(ref nint request, string what)
    {
        var clock = Stopwatch.StartNew();
        var spins = 0;
        while (true)
        {
            int done;
            fixed (nint* r = &request)
            {
                MpiLibrary.Check(_api.Test(r, &done, _api.StatusIgnore), "MPI_Test");
            }

            if (done != 0)
            {
                return;
            }

            if (clock.Elapsed > Timeout)
            {
                throw new TimeoutException(string.Create(CultureInfo.InvariantCulture,
                    $"Rank {Rank} of {WorldSize}: the {what} waited {Timeout.TotalSeconds:F0} s for the other ranks; one of them has stopped or is stuck (see its log)."));
            }

            // Spin briefly (a step's collectives complete in microseconds to milliseconds), then yield the core to the
            // ranks' compute: on a machine with a core per rank, a spinning wait slows the rank it waits for.
            if (++spins > 200)
            {
                Thread.Sleep(spins > 2000 ? 1 : 0);
            }
        }
    }
}
