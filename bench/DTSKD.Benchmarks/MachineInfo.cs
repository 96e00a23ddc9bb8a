using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace DTSKD.Benchmarks;

/// <summary>What the numbers were measured on.</summary>
public static class MachineInfo
{
    public static string Describe(Device device)
    {
        var cpu = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
            : null;
        var memory = File.Exists("/proc/meminfo")
            ? File.ReadLines("/proc/meminfo").First().Split(':', 2)[1].Trim()
            : "unknown";
        return $"{RuntimeInformation.OSDescription}; {cpu ?? RuntimeInformation.ProcessArchitecture.ToString()}, {Environment.ProcessorCount} logical cores " +
               $"(torch threads: {get_num_threads()}), {memory} RAM; .NET {Environment.Version}; TorchSharp {typeof(Tensor).Assembly.GetName().Version}; device {device.type}";
    }
}
