using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// Logs to the run's train.log (timestamped lines, appended) and shows warnings on the console too. Lines logged before
/// <see cref="Open"/> are held back, so nothing is written to the run folder until the run's checks have passed.
/// </summary>
public sealed class FileLoggerProvider(string path, IAnsiConsole console) : ILoggerProvider
{
    private readonly Lock _gate = new();
    private readonly List<string> _pending = [];
    private StreamWriter? _writer;

    public ILogger CreateLogger(string categoryName) => new FileLogger(this, categoryName);

    /// <summary>Starts writing to the file (after the lines held back so far).</summary>
    public void Open()
    {
        lock (_gate)
        {
            _writer ??= new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read)) { AutoFlush = true };
            _pending.ForEach(_writer.WriteLine);
            _pending.Clear();
        }
    }

    public void Dispose() => _writer?.Dispose();

    private void Write(LogLevel level, string line)
    {
        lock (_gate)
        {
            if (_writer is null)
            {
                _pending.Add(line);
            }
            else
            {
                _writer.WriteLine(line);
            }
        }

        if (level >= LogLevel.Warning)
        {
            console.MarkupLineInterpolated($"[yellow]warning:[/] {line[(line.IndexOf(": ", StringComparison.Ordinal) + 2)..]}");
        }
    }

    private sealed class FileLogger(FileLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                var text = $"{DateTime.UtcNow:yyyy-MM-dd HH:mm:ss}Z {logLevel,-11} {category}: {formatter(state, exception)}";
                owner.Write(logLevel, exception is null ? text : text + Environment.NewLine + exception);
            }
        }
    }
}
