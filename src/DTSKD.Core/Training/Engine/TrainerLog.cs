using Microsoft.Extensions.Logging;

namespace DTSKD.Core.Training;

/// <summary>The trainer's log lines, defined once (LoggerMessage: no formatting unless the level is on).</summary>
internal static class TrainerLog
{
    public static readonly Action<ILogger, int, double, double, double, double, double, Exception?> Epoch =
        LoggerMessage.Define<int, double, double, double, double, double>(
            LogLevel.Information,
            new EventId(1, "Epoch"),
            "Epoch {Epoch}: loss {Loss:F4}, train top-1 {TrainTop1:F2}%, test top-1 {Top1:F2}% (top-5 {Top5:F2}%), {ImagesPerSecond:F0} images/s");

    public static readonly Action<ILogger, string, int, int, Exception?> Checkpoint =
        LoggerMessage.Define<string, int, int>(LogLevel.Information, new EventId(2, "Checkpoint"), "Checkpoint written to {Path} (next epoch {Epoch}, step {Step})");

    public static readonly Action<ILogger, string, string, string, int, Exception?> OptionChanged =
        LoggerMessage.Define<string, string, string, int>(LogLevel.Information, new EventId(3, "OptionChanged"),
            "Resuming with {Option} = {Now} (the checkpoint was written with {Then}): applied from epoch {Epoch}");

    public static readonly Action<ILogger, int, int, Exception?> ThreadsChanged =
        LoggerMessage.Define<int, int>(LogLevel.Warning, new EventId(4, "ThreadsChanged"),
            "Resuming with {Now} CPU threads; the checkpoint was written with {Then}. The run continues correctly, but not bit-identically to an uninterrupted one (floating-point sums depend on the thread count).");

    public static readonly Action<ILogger, string, string, Exception?> Leftover =
        LoggerMessage.Define<string, string>(LogLevel.Information, new EventId(5, "Leftover"), "Removed {File}, left in {Folder} by an interrupted write");
}
