using System.Globalization;

namespace DTSKD.Samples.Cifar100.Tests;

/// <summary>One training per run folder, held by the operating system for the life of the process.</summary>
public sealed class RunLockTests : SampleTestBase
{
    [Fact]
    public async Task A_second_training_in_the_same_folder_is_refused_at_once_and_a_killed_one_leaves_nothing_to_clean()
    {
        var (_, experiments, common) = TinyRun("shared", train: 640, test: 64, batch: 32, logInterval: 1);
        var run = Path.Combine(experiments, "shared");

        // A long first training (it is killed below): it holds the folder once its lock owner note names it.
        using var first = StartSample([.. common, "--epochs", "100", "--threads", "1"]);
        _ = first.StandardOutput.ReadToEndAsync();
        var stderr = first.StandardError.ReadToEndAsync();
        var owner = Path.Combine(run, ".lock.owner");
        var pid = first.Id.ToString(CultureInfo.InvariantCulture);
        for (var waited = 0; !(File.Exists(owner) && (await File.ReadAllTextAsync(owner)).Contains($"\"ProcessId\":{pid},", StringComparison.Ordinal)); waited++)
        {
            if (first.HasExited)
            {
                Assert.Fail("the first training ended early: " + await stderr);
            }

            waited.Should().BeLessThan(600, "the first training takes its folder within a minute");
            await Task.Delay(100);
        }

        // The second one, while the first trains: refused before it reads the data, naming the holder.
        var (code, _, errors) = await Run([.. common, "--epochs", "1", "--overwrite"]);
        first.HasExited.Should().BeFalse("the first training was still running");
        code.Should().Be(Sample.InUse);
        errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should()
            .MatchRegex($@"^error: '{run}' is in use by another training: process {pid} on {Environment.MachineName}, since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\dZ\.$");

        // kill -9: the lock goes with the process, and the same folder trains again with nothing cleaned by hand.
        first.Kill();
        await first.WaitForExitAsync();
        var (again, output, againErrors) = await Run([.. common, "--epochs", "1", "--overwrite"]);
        again.Should().Be(Sample.Ok, output + againErrors);
        File.Exists(Path.Combine(run, "last.ckpt")).Should().BeTrue();
    }
}
