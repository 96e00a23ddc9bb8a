using TorchSharp;

namespace DTSKD.Core;

/// <summary>Loads TorchSharp's native layer once, and turns a load failure into an error that says what to do.</summary>
internal static class TorchSharpRuntime
{
    internal const string TroubleshootingPage = "docs/troubleshooting.md (in the DTSKD.Core repository and package)";

    private static readonly Lazy<Exception?> LoadFailure = new(TryLoad, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Throws <see cref="InvalidOperationException"/> with guidance when TorchSharp cannot load.</summary>
    public static void EnsureLoaded()
    {
        if (LoadFailure.Value is { } failure)
        {
            throw new InvalidOperationException(Describe(failure), failure);
        }
    }

    internal static string Describe(Exception failure)
    {
        var inner = failure;
        while (inner is TypeInitializationException { InnerException: { } next })
        {
            inner = next;
        }

        var firstLine = inner.Message.Split('\n', 2)[0].Trim();
        var hint = OperatingSystem.IsLinux()
            ? "On Linux this is usually libstdc++ older than GCC 13's (Debian 12, Ubuntu 22.04): build with DTSKD.Core's " +
              "targets enabled (the default; DtskdFixTorchSharpLoad must not be 'false') so libLibTorchSharp.so in your output is patched, " +
              "or reference a libtorch bundle package (TorchSharp-cpu, TorchSharp-cuda-linux) if none is referenced."
            : OperatingSystem.IsWindows()
                ? "On Windows, TorchSharp 0.107.0 has a known load failure (dotnet/TorchSharp#1567): pin an earlier TorchSharp bundle, " +
                  "and make sure a libtorch bundle package (TorchSharp-cpu, TorchSharp-cuda-windows) is referenced."
                : "Make sure a libtorch bundle package (TorchSharp-cpu or a CUDA bundle) is referenced by your application.";
        return $"DTSKD.Core could not load TorchSharp's native libraries ({inner.GetType().Name}: {firstLine}). {hint} " +
               $"See {TroubleshootingPage}.";
    }

    private static Exception? TryLoad()
    {
        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
            return null;
        }
        catch (Exception ex) when (ex is TypeInitializationException or NotSupportedException or DllNotFoundException or BadImageFormatException or EntryPointNotFoundException)
        {
            return ex;
        }
    }
}
