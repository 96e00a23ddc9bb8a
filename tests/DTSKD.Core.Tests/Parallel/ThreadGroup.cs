using DTSKD.Core.Training;

namespace DTSKD.Core.Tests.Parallel;

/// <summary>
/// Ranks as threads of one test process, meeting at a barrier: the collectives' semantics without MPI, for testing what
/// the engine does with them. Values travel through float64 host copies.
/// </summary>
internal sealed class ThreadGroup : IProcessGroup
{
    private readonly Shared _shared;

    private ThreadGroup(Shared shared, int rank) => (_shared, Rank) = (shared, rank);

    public int Rank { get; }

    public int WorldSize => _shared.Slots.Length;

    public string Description => $"{WorldSize} threads";

    /// <summary>All-reduce calls made by rank 0, and the elements they carried.</summary>
    public (int Calls, long Elements) Traffic => (_shared.Calls, _shared.Elements);

    /// <summary>One group object per rank.</summary>
    public static ThreadGroup[] Create(int ranks)
    {
        var shared = new Shared(ranks);
        return [.. Enumerable.Range(0, ranks).Select(r => new ThreadGroup(shared, r))];
    }

    /// <summary>Runs <paramref name="body"/> on every rank at once, on threads of its own; rethrows the first failure.</summary>
    public static T[] Run<T>(ThreadGroup[] ranks, Func<ThreadGroup, T> body)
    {
        var results = new T[ranks.Length];
        var errors = new Exception?[ranks.Length];
        var threads = ranks.Select(g => new Thread(() =>
        {
            try
            {
                results[g.Rank] = body(g);
            }
            catch (Exception ex)
            {
                errors[g.Rank] = ex;
                g._shared.Barrier.RemoveParticipant();
            }
        }, maxStackSize: 16 << 20)).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        return errors.FirstOrDefault(e => e is not null) is { } error ? throw new InvalidOperationException("A rank failed.", error) : results;
    }

    public void AllReduce(Tensor values, ReduceOperation operation)
    {
        if (Rank == 0)
        {
            _shared.Calls++;
            _shared.Elements += values.numel();
        }

        Exchange(values);
        using var stacked = stack(_shared.Slots.Select(s => tensor(s!, [s!.Length], ScalarType.Float64)), 0);
        using var sum = stacked.sum(dim: 0);
        using var result = operation == ReduceOperation.Average ? sum.div(WorldSize) : sum.alias();
        Meet();
        using var shaped = result.view(values.shape).to(values.dtype, values.device);
        values.copy_(shaped);
    }

    public void Broadcast(Tensor values, int root)
    {
        Exchange(values);
        using var rootValues = tensor(_shared.Slots[root]!, values.shape, ScalarType.Float64).to(values.dtype, values.device);
        Meet();
        values.copy_(rootValues);
    }

    public void Barrier() => Meet();

    public double[] AllGather(double value)
    {
        _shared.Slots[Rank] = [value];
        Meet();
        var all = _shared.Slots.Select(s => s![0]).ToArray();
        Meet();
        return all;
    }

    private void Exchange(Tensor values)
    {
        using var host = values.detach().to(ScalarType.Float64, CPU).contiguous();
        _shared.Slots[Rank] = host.data<double>().ToArray();
        Meet();
    }

    private void Meet()
    {
        if (!_shared.Barrier.SignalAndWait(TimeSpan.FromSeconds(60)))
        {
            throw new TimeoutException($"Rank {Rank} waited 60 s for the others.");
        }
    }

    private sealed class Shared(int ranks)
    {
        public double[]?[] Slots { get; } = new double[ranks][];

        public System.Threading.Barrier Barrier { get; } = new(ranks);

        public int Calls { get; set; }

        public long Elements { get; set; }
    }
}
