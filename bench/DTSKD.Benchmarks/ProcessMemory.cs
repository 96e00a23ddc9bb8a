using System.Diagnostics;

namespace DTSKD.Benchmarks;

/// <summary>The process's resident memory now and at its peak, and (on Linux) a way to start the peak afresh.</summary>
public static class ProcessMemory
{
    public static (long Resident, long Peak) Read()
    {
        using var process = Process.GetCurrentProcess();
        return (process.WorkingSet64, process.PeakWorkingSet64);
    }

    /// <summary>Resets the kernel's peak (VmHWM) to the current resident size, so the next peak is the next operation's; returns that size.</summary>
    public static long ResetPeak()
    {
        if (OperatingSystem.IsLinux())
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
        }

        return Read().Resident;
    }
}
