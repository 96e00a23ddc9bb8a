using System.Threading.RateLimiting;

namespace DTSKD.Samples.Serve;

/// <summary>
/// Bounds the memory the server's decodes take together: every decode holds permits for the bytes its header says it will
/// allocate (<see cref="Core.Images.ImageDecoder.DecodedBytes"/>), out of <see cref="ServeOptions.DecodeBudgetBytes"/>;
/// requests wait, oldest first, while the budget is spent, and past <see cref="ServeOptions.QueueLimit"/> waiting ones a
/// request is turned away at once (503, Retry-After). A small image waits behind a large one no longer than that decode.
/// </summary>
public sealed class DecodeBudget : IDisposable
{
    // Permits are counted in KiB: ConcurrencyLimiter counts in int, and 1 TiB of budget is 2^30 KiB.
    private const long Unit = 1024;

    private readonly ConcurrencyLimiter _limiter;
    private readonly int _queueLimit;
    private int _waiting;

    /// <summary>Creates the budget from the settings.</summary>
    /// <param name="options">The budget (<see cref="ServeOptions.DecodeBudgetBytes"/>) and the queue (<see cref="ServeOptions.QueueLimit"/>).</param>
    public DecodeBudget(ServeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Bytes = options.DecodeBudgetBytes;
        _queueLimit = options.QueueLimit;
        _limiter = new ConcurrencyLimiter(new ConcurrencyLimiterOptions
        {
            PermitLimit = (int)(Bytes / Unit),
            QueueLimit = int.MaxValue,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        });
    }

    /// <summary>The budget, in bytes.</summary>
    public long Bytes { get; }

    /// <summary>Waits for <paramref name="bytes"/> of the budget; null when the queue is full.</summary>
    /// <param name="bytes">What the decode will allocate; at most <see cref="Bytes"/> (a larger image is refused before this).</param>
    /// <param name="cancellationToken">The request's abort.</param>
    /// <returns>The lease to dispose once the decode is done, or null: turn the request away.</returns>
    public async ValueTask<RateLimitLease?> Acquire(long bytes, CancellationToken cancellationToken)
    {
        var permits = (int)Math.Clamp((bytes + Unit - 1) / Unit, 1, Bytes / Unit);
        var now = _limiter.AttemptAcquire(permits);
        if (now.IsAcquired)
        {
            return now;
        }

        now.Dispose();
        if (Interlocked.Increment(ref _waiting) > _queueLimit)
        {
            Interlocked.Decrement(ref _waiting);
            return null;
        }

        try
        {
            var lease = await _limiter.AcquireAsync(permits, cancellationToken).ConfigureAwait(false);
            if (lease.IsAcquired)
            {
                return lease;
            }

            lease.Dispose();
            return null;
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }
    }

    /// <inheritdoc />
    public void Dispose() => _limiter.Dispose();
}
