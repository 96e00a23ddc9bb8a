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
        return $"{RuntimeInformation.OSDescription}; {cpu ?? RuntimeInformation.ProcessArchitecture.ToString()} ({VectorUnits()}), {Environment.ProcessorCount} logical cores " +
               $"(torch threads: {get_num_threads()}), {memory} RAM; .NET {Environment.Version}; TorchSharp {typeof(Tensor).Assembly.GetName().Version}; device {device.type}";
    }

    /// <summary>
    /// The vector instructions that decide CPU figures, above all bfloat16's (bfloat16 runs are bit-exact only within one
    /// family: AVX-512 BF16 and AMX round differently from the emulated path).
    /// </summary>
    public static string VectorUnits()
    {
        var flags = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal))?.Split(':', 2)[1].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet()
            : null;
        if (flags is null)
        {
            return "instruction sets unknown";
        }

        string[] known = ["avx2", "avx512f", "avx512_bf16", "amx_bf16"];
        var present = known.Where(flags.Contains).ToList();
        var bf16 = flags.Contains("amx_bf16") ? "bfloat16 in AMX" : flags.Contains("avx512_bf16") ? "bfloat16 in AVX-512 BF16" : "no native bfloat16";
        return $"{string.Join(", ", present)}; {bf16}";
    }
}
