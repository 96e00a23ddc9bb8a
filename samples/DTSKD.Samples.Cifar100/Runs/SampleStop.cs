using System.Runtime.InteropServices;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// How a run is asked to stop: the first Ctrl+C (SIGINT) or SIGTERM cancels the token, so the trainer saves a checkpoint at
/// the next step and the sample exits 130 or 143; a second signal is left to the system and ends the process at once.
/// </summary>
public sealed class SampleStop : IDisposable
{
    private readonly CancellationTokenSource _source = new();

    /// <summary>Cancelled when a stop was asked for.</summary>
    public CancellationToken Token => _source.Token;

    /// <summary>The exit code of a stopped run: 130 after SIGINT (or an in-process cancel), 143 after SIGTERM.</summary>
    public int ExitCode { get; private set; } = Sample.Interrupted;

    /// <summary>Asks for a stop, as the given signal would.</summary>
    public void Request(PosixSignal signal)
    {
        ExitCode = signal == PosixSignal.SIGTERM ? Sample.Terminated : Sample.Interrupted;
        _source.Cancel();
    }

    /// <summary>The handler for <see cref="PosixSignalRegistration"/>.</summary>
    public void Handle(PosixSignalContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (_source.IsCancellationRequested)
        {
            return;
        }

        context.Cancel = true;
        Request(context.Signal);
    }

    /// <inheritdoc />
    public void Dispose() => _source.Dispose();
}
