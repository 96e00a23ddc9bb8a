namespace DTSKD.Benchmarks.Tests;

/// <summary>A user's error in any benchmark command is one line and exit 2, before anything is measured; never a stack trace.</summary>
public sealed class BenchCommandLineTests
{
    [Theory]
    [InlineData("deploy --batch-sizes abc", "error: --batch-sizes must be whole numbers from 1, separated by commas; got 'abc'.")]
    [InlineData("layout-gradients --image-sizes 16,0", "error: --image-sizes must be whole numbers from 1, separated by commas; got '16,0'.")]
    [InlineData("steps --batch-size 0", "error: --batch-size must be 1 or more; got 0.")]
    [InlineData("checkpoint --samples -5", "error: --samples must be 1 or more; got -5.")]
    [InlineData("history --samples 10", "error: --samples must be 128 or more (one step reads 128 rows); got 10.")]
    [InlineData("history --heads 0", "error: --heads must be 1 or more; got 0.")]
    [InlineData("deploy --seconds 0", "error: --seconds must be greater than 0; got 0.")]
    [InlineData("images --folder /nonexistent-dtskd-folder", "error: '/nonexistent-dtskd-folder' does not exist.")]
    [InlineData("steps --output /proc/version/steps.md", "error: --output '/proc/version/steps.md' cannot be written: '/proc/version' is a file, not a folder.")]
    [InlineData("steps --output /proc/steps.md", "error: --output '/proc/steps.md' cannot be written: Could not find file '/proc/.steps.md.*.probe'.")]
    [InlineData("serve-load --output /tmp", "error: --output '/tmp' is a folder; give a file (for example report.md).")]
    [InlineData("ablation --epochs 0 --output /tmp/dtskd-never/a.md", "error: --epochs must be 1 or more; got 0.")]
    [InlineData("ablation --label-noise 1 --output /tmp/dtskd-never/a.md", "error: --label-noise must be a fraction in [0, 1); got 1.")]
    [InlineData("ablation --label-noise -0.5 --output /tmp/dtskd-never/a.md", "error: --label-noise must be 0 or more; got -0.5.")]
    [InlineData("ablation --train-limit 0 --output /tmp/dtskd-never/a.md", "error: --train-limit must be 1 or more; got 0.")]
    public async Task A_user_s_error_is_one_line_and_exit_2(string args, string expected)
    {
        var (code, output) = await BenchProcess.Run(args.Split(' '));

        // Some commands name the machine first; the error is the last line, and nothing else is printed after it.
        code.Should().Be(2, output);
        output.Trim().Split('\n')[^1].Should().Match(expected);
        output.Should().NotContain("   at ", "no stack trace");
        Directory.Exists("/tmp/dtskd-never").Should().BeFalse("a refused study writes nothing");
    }
}
