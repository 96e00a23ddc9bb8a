namespace DTSKD.Samples.Cifar100;

/// <summary>What the CPU offers that changes the sample's defaults.</summary>
public static class CpuFeatures
{
    private static readonly Lazy<bool> Bf16 = new(() => HasNativeBFloat16(ReadCpuInfo()));

    /// <summary>
    /// Whether the CPU computes bfloat16 natively (x86 AVX512-BF16 or AMX-BF16). LibTorch's CPU kernels use these
    /// instructions; without them bfloat16 is emulated and slower than float32. Read from <c>/proc/cpuinfo</c>, so
    /// false on systems that have none (Windows, macOS), where bfloat16 has not been measured.
    /// </summary>
    public static bool NativeBFloat16 => Bf16.Value;

    /// <summary>Whether a <c>/proc/cpuinfo</c> text lists a native bfloat16 instruction set in its flags.</summary>
    public static bool HasNativeBFloat16(string? cpuInfo) =>
        cpuInfo is not null && cpuInfo.Split('\n')
            .Where(line => line.StartsWith("flags", StringComparison.Ordinal))
            .SelectMany(line => line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Any(flag => flag is "avx512_bf16" or "amx_bf16");

    private static string? ReadCpuInfo()
    {
        try
        {
            return OperatingSystem.IsLinux() ? File.ReadAllText("/proc/cpuinfo") : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
