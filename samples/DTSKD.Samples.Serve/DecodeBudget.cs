using System.Threading.RateLimiting;
using DTSKD.Core.Deployment;

namespace DTSKD.Samples.Serve;

/// <summary>
/// Bounds the memory the server's decodes take together: every decode holds permits for the bytes its header says it will
/// allocate (<see cref="ImageDecoder.DecodedBytes"/>), out of <see cref="ServeOptions.DecodeBudgetBytes"/>;
/// requests wait, oldest first, while the budget is spent, and past <see cref="ServeOptions.QueueLimit"/> waiting ones a
/// request is turned away at once (503, Retry-After).
/// </summary>
/// <remarks>
/// Two lanes, so that bombs cannot starve ordinary requests: an eighth of the budget serves small decodes (at most a
/// quarter of that lane each, a photo-sized image), the rest large ones, and large decodes run at most one fewer at a
/// time than the machine has cores, so a core is left for /health and the small lane.
/// </remarks>
public sealed class DecodeBudget : IDisposable
{
    // Permits are counted in KiB: ConcurrencyLimiter counts in int, and 1 TiB of budget is 2^30 KiB.
    private const long Unit = 1024;

    private readonly ConcurrencyLimiter _small;
    private readonly ConcurrencyLimiter _large;
    private readonly ConcurrencyLimiter _largeDecodes;
    private readonly long _smallBytes;
    private readonly int _queueLimit;
    private int _waiting;

    /// <summary>Creates the budget from the settings.</summary>
    /// <param name="options">The budget (<see cref="ServeOptions.DecodeBudgetBytes"/>) and the queue (<see cref="ServeOptions.QueueLimit"/>).</param>
    public DecodeBudget(ServeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _smallBytes = options.DecodeBudgetBytes / 8;
        Bytes = options.DecodeBudgetBytes - _smallBytes;
        _queueLimit = options.QueueLimit;
        _small = Limiter(_smallBytes / Unit);
        _large = Limiter(Bytes / Unit);
        _largeDecodes = Limiter(Math.Max(1, Environment.ProcessorCount - 1));
    }

    /// <summary>The most one decode may take (the large lane's share of the budget), in bytes.</summary>
    public long Bytes { get; }

    /// <summary>Waits for <paramref name="bytes"/> of the budget; null when the queue is full.</summary>
    /// <param name="bytes">What the decode will allocate; at most <see cref="Bytes"/> (a larger image is refused before this).</param>
    /// <param name="cancellationToken">The request's abort.</param>
    /// <returns>The lease to dispose once the decode is done, or null: turn the request away.</returns>
    public async ValueTask<IDisposable?> Acquire(long bytes, CancellationToken cancellationToken)
    {
        var small = bytes <= _smallBytes / 4;
        var lane = small ? _small : _large;
        var permits = (int)Math.Clamp((bytes + Unit - 1) / Unit, 1, (small ? _smallBytes : Bytes) / Unit);
        if (Now(lane, permits) is { } now)
        {
            return small ? now : await Decode(now, cancellationToken).ConfigureAwait(false);
        }

        if (Interlocked.Increment(ref _waiting) > _queueLimit)
        {
            Interlocked.Decrement(ref _waiting);
            return null;
        }

        try
        {
            var lease = await lane.AcquireAsync(permits, cancellationToken).ConfigureAwait(false);
            if (!lease.IsAcquired)
            {
                lease.Dispose();
                return null;
            }

            return small ? lease : await Decode(lease, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _small.Dispose();
        _large.Dispose();
        _largeDecodes.Dispose();
    }

    private static ConcurrencyLimiter Limiter(long permits) => new(new ConcurrencyLimiterOptions
    {
        PermitLimit = (int)Math.Max(1, permits),
        QueueLimit = int.MaxValue,
        QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
    });

    private static RateLimitLease? Now(ConcurrencyLimiter limiter, int permits)
    {
        var lease = limiter.AttemptAcquire(permits);
        if (lease.IsAcquired)
        {
            return lease;
        }

        lease.Dispose();
        return null;
    }

    /// <summary>A large decode's memory, then its turn among the large decodes (memory first: it is what is bounded).</summary>
    private async ValueTask<IDisposable> Decode(RateLimitLease memory, CancellationToken cancellationToken)
    {
        try
        {
            var turn = await _largeDecodes.AcquireAsync(1, cancellationToken).ConfigureAwait(false);
            return new Both(memory, turn);
        }
        catch
        {
            memory.Dispose();
            throw;
        }
    }

    private sealed class Both(IDisposable first, IDisposable second) : IDisposable
    {
        public void Dispose()
        {
            second.Dispose();
            first.Dispose();
        }
    }
}
