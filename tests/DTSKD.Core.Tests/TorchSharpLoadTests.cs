using System.Reflection;
using DTSKD.Build;

namespace DTSKD.Core.Tests;

/// <summary>TorchSharp loads through the normal build, and the build-time ELF fix behind that is sound.</summary>
public class TorchSharpLoadTests
{
    private static string Metadata(string key) =>
        typeof(TorchSharpLoadTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    private static string PackagedNativeLibrary =>
        Path.Combine(Metadata("NuGetPackageRoot"), "torchsharp", Metadata("TorchSharpVersion"), "runtimes", "linux-x64", "native", "libLibTorchSharp.so");

    private static string OutputNativeLibrary =>
        Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");

    [Fact]
    public void TorchSharp_loads_and_runs_a_backward_pass()
    {
        using var x = ones(3, 4, requires_grad: true);
        using var w = full(4, 2, 0.5f, requires_grad: true);
        using var loss = x.matmul(w).pow(2).sum();
        loss.backward();
        // d/dw of sum((x w)^2) = 2 x^T (x w) = 2 * 3 * 2 = 12 for every element.
        w.grad!.data<float>().ToArray().Should().AllBeEquivalentTo(12f);
    }

    [Fact]
    public void The_build_output_copy_is_patched_exactly_when_the_host_libstdcxx_lacks_the_version()
    {
        OperatingSystem.IsLinux().Should().BeTrue("CI and this suite run on Linux, where the fix applies");
        var host = new[] { "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64" }
            .Select(d => Path.Combine(d, "libstdc++.so.6")).First(File.Exists);
        var hostHas32 = ElfVersionNeeds.DefinedVersions(File.ReadAllBytes(host)).Contains("GLIBCXX_3.4.32");

        var output = NeedOf(File.ReadAllBytes(OutputNativeLibrary), "GLIBCXX_3.4.32");
        var packaged = NeedOf(File.ReadAllBytes(PackagedNativeLibrary), "GLIBCXX_3.4.32");

        packaged.Weak.Should().BeFalse("the NuGet cache must never be modified");
        output.Weak.Should().Be(!hostHas32);
    }

    [Fact]
    public void Weaken_marks_only_the_missing_unbound_version_and_is_idempotent()
    {
        var bytes = File.ReadAllBytes(PackagedNativeLibrary);
        var original = (byte[])bytes.Clone();
        var available = DefinedUpTo30();

        var first = ElfVersionNeeds.Weaken(bytes, "libstdc++.so.6", available);

        first.Weakened.Should().Equal("GLIBCXX_3.4.32");
        first.Blocked.Should().BeEmpty();
        bytes.Where((b, i) => b != original[i]).Should().HaveCount(1, "exactly one flag byte changes");
        NeedOf(bytes, "GLIBCXX_3.4.32").Weak.Should().BeTrue();

        var second = ElfVersionNeeds.Weaken(bytes, "libstdc++.so.6", available);
        second.Changed.Should().BeFalse();
        second.AlreadyWeak.Should().Equal("GLIBCXX_3.4.32");
    }

    [Fact]
    public void A_missing_version_that_relocations_bind_to_is_reported_not_weakened()
    {
        var bytes = File.ReadAllBytes(PackagedNativeLibrary);
        var available = DefinedUpTo30();
        available.Remove("GLIBCXX_3.4.30");

        var report = ElfVersionNeeds.Weaken(bytes, "libstdc++.so.6", available);

        report.Blocked.Should().ContainSingle(b => b.StartsWith("GLIBCXX_3.4.30 (used by ", StringComparison.Ordinal));
        NeedOf(bytes, "GLIBCXX_3.4.30").Weak.Should().BeFalse();
    }

    [Fact]
    public void WeakenFile_replaces_the_file_without_writing_through_a_hard_link()
    {
        var dir = Directory.CreateTempSubdirectory("dtskd-elf-");
        try
        {
            var cache = Path.Combine(dir.FullName, "cache.so");
            var output = Path.Combine(dir.FullName, "output.so");
            File.Copy(PackagedNativeLibrary, cache);
            File.CreateSymbolicLink(output + ".probe", cache).Delete();
            Link(cache, output);

            var report = ElfVersionNeeds.WeakenFile(output, "libstdc++.so.6", DefinedUpTo30());

            report.Changed.Should().BeTrue();
            NeedOf(File.ReadAllBytes(output), "GLIBCXX_3.4.32").Weak.Should().BeTrue();
            NeedOf(File.ReadAllBytes(cache), "GLIBCXX_3.4.32").Weak.Should().BeFalse("the linked original keeps its bytes");
            Directory.GetFiles(dir.FullName).Should().HaveCount(2, "no temporary file is left behind");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Files_that_are_not_64_bit_ELF_are_left_alone()
    {
        ElfVersionNeeds.Weaken("not an elf file at all, just text.........................................."u8.ToArray(), "libstdc++.so.6", new HashSet<string>())
            .Unsupported.Should().Contain("not an ELF");
        var truncated = File.ReadAllBytes(PackagedNativeLibrary)[..4096];
        ElfVersionNeeds.Weaken(truncated, "libstdc++.so.6", new HashSet<string>()).Unsupported.Should().Contain("truncated");
    }

    [Fact]
    public void A_load_failure_is_described_with_the_cause_and_the_troubleshooting_page()
    {
        var failure = new TypeInitializationException("TorchSharp.torch", new NotSupportedException("libLibTorchSharp.so: version `GLIBCXX_3.4.32' not found\nmore"));
        var message = TorchSharpRuntime.Describe(failure);
        message.Should().Contain("NotSupportedException").And.Contain("GLIBCXX_3.4.32' not found").And.Contain("docs/troubleshooting.md").And.NotContain("more");
    }

    private static HashSet<string> DefinedUpTo30()
    {
        var names = new HashSet<string>(StringComparer.Ordinal) { "GLIBCXX_3.4", "CXXABI_1.3" };
        for (var i = 1; i <= 30; i++)
        {
            names.Add($"GLIBCXX_3.4.{i}");
        }

        for (var i = 1; i <= 13; i++)
        {
            names.Add($"CXXABI_1.3.{i}");
        }

        return names;
    }

    private static (bool Found, bool Weak) NeedOf(byte[] elf, string version)
    {
        // Weakening against an empty set reports every libstdc++ need, weak or not, without our own parser's help
        // for the flag: read the flag through a fresh copy so the check does not depend on Weaken's bookkeeping.
        var copy = (byte[])elf.Clone();
        var report = ElfVersionNeeds.Weaken(copy, "libstdc++.so.6", new HashSet<string>());
        var weak = report.AlreadyWeak.Contains(version);
        var found = weak || report.Weakened.Contains(version) || report.Blocked.Any(b => b.StartsWith(version + " ", StringComparison.Ordinal));
        found.Should().BeTrue($"{version} is a libstdc++ need of the library");
        return (found, weak);
    }

    private static void Link(string existing, string link)
    {
        using var process = System.Diagnostics.Process.Start("ln", [existing, link]);
        process.WaitForExit();
        process.ExitCode.Should().Be(0);
    }
}
