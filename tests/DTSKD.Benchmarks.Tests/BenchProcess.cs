using System.Diagnostics;
using System.Reflection;

namespace DTSKD.Benchmarks.Tests;

/// <summary>The bench as a user runs it: a process of its own, with the test machine's scheduler variables removed.</summary>
internal static class BenchProcess
{
    public static Process Start(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null, string? program = null)
    {
        var info = new ProcessStartInfo("dotnet", [program ?? Path.Combine(AppContext.BaseDirectory, "DTSKD.Benchmarks.dll"), .. args])
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        // A study must not think it runs under a scheduler the test machine happens to use.
        info.Environment.Remove("SLURM_ARRAY_TASK_ID");
        info.Environment.Remove("JOB_COMPLETION_INDEX");
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        return Process.Start(info)!;
    }

    public static async Task<(int Code, string Output)> Run(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null, string? program = null)
    {
        using var process = Start(args, environment, program);
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await output + await errors);
    }

    /// <summary>ML.NET's pipeline, a program of its own (bench/DTSKD.Benchmarks.MlNet), where the build put it.</summary>
    public static string MlNetBaseline { get; } = typeof(BenchProcess).Assembly.GetCustomAttributes<System.Reflection.AssemblyMetadataAttribute>()
        .Single(a => a.Key == "MlNetBaseline").Value!;
}
