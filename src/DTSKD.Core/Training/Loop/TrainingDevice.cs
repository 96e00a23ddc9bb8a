using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>The device a run trains on, chosen from a name, the same way in the sample, the benchmarks and your code.</summary>
public static class TrainingDevice
{
    /// <summary>The names <see cref="Choose"/> accepts.</summary>
    public const string Names = "auto (CUDA when available, else CPU), cpu, cuda or cuda:<index>";

    /// <summary>Whether this process can train on CUDA: a CUDA build of LibTorch is loaded and sees a GPU.</summary>
    public static bool CudaAvailable
    {
        get
        {
            TorchSharpRuntime.EnsureLoaded();
            return cuda.is_available();
        }
    }

    /// <summary>The device of a name.</summary>
    /// <param name="name">auto, cpu, cuda or cuda:&lt;index&gt; (case-insensitive).</param>
    /// <exception cref="ArgumentException">The name is none of these.</exception>
    /// <exception cref="NotSupportedException">CUDA is asked for and this process cannot use it (the message says how to get a CUDA build).</exception>
    public static Device Choose(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var key = name.Trim().ToLowerInvariant();
        if (key == "cpu")
        {
            return CPU;
        }

        if (key == "auto")
        {
            return CudaAvailable ? CUDA : CPU;
        }

        var index = key == "cuda" ? 0 : key.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(key[5..], out var i) && i >= 0 ? i : -1;
        if (index < 0)
        {
            throw new ArgumentException($"unknown device '{name}'; known: {Names}.", nameof(name));
        }

        if (!CudaAvailable)
        {
            throw new NotSupportedException(
                $"device '{name}', but CUDA is not available to this process: it needs an NVIDIA GPU and a CUDA build of LibTorch " +
                "(build with -p:TorchSharpBackend=cuda-linux or cuda-windows, see README).");
        }

        if (index >= cuda.device_count())
        {
            throw new NotSupportedException($"device '{name}', but this machine has {cuda.device_count()} CUDA device(s).");
        }

        return new Device(DeviceType.CUDA, index);
    }
}
