using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Reflection;
using System.Security.Cryptography;
using DTSKD.Core.Data;
using DTSKD.Samples.Cifar100;
using Spectre.Console.Testing;

namespace DTSKD.Samples.Cifar100.Tests;

public sealed class SampleTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-sample-");

    public void Dispose() => _dir.Delete(recursive: true);

    private static byte[] CifarRecords(int count, int seed)
    {
        var rng = new Random(seed);
        var bytes = new byte[count * CifarReader.Cifar100RecordSize];
        rng.NextBytes(bytes);
        for (var r = 0; r < count; r++)
        {
            // Learnable: the fine label is also written into the red plane's first row.
            var label = (byte)(r % 100);
            bytes[r * 3074] = (byte)(label / 5);
            bytes[(r * 3074) + 1] = label;
        }

        return bytes;
    }

    private string WriteCifar100(int train, int test)
    {
        var data = Path.Combine(_dir.FullName, "data");
        var folder = Directory.CreateDirectory(Path.Combine(data, Cifar100Download.FolderName));
        File.WriteAllBytes(Path.Combine(folder.FullName, "train.bin"), CifarRecords(train, 1));
        File.WriteAllBytes(Path.Combine(folder.FullName, "test.bin"), CifarRecords(test, 2));
        return data;
    }

    private static async Task<(int Code, string Output, string Errors)> Run(params string[] args)
    {
        var console = new TestConsole();
        console.Profile.Width = 400;
        using var errors = new StringWriter();
        var code = await Sample.RunAsync(args, console, errors, CancellationToken.None);
        return (code, console.Output, errors.ToString());
    }

    [Theory]
    [InlineData("--epochs -3", "--epochs must be greater than 0; got -3.")]
    [InlineData("--lr 0", "--lr must be greater than 0; got 0.")]
    [InlineData("--classifier-type resnet18_dtkd", "Unknown --classifier-type 'resnet18_dtkd'. Known models: resnet18_dtskd, resnet34_dtskd.")]
    [InlineData("--data-type imagenet", "imagenet")]
    [InlineData("--cos-max 0.2 --cos-min 0.5", "--cos-min (0.5) must not exceed --cos-max (0.2).")]
    [InlineData("--hskd 2", "--hskd")]
    [InlineData("--train-limit 0", "--train-limit must be greater than 0.")]
    public async Task Invalid_values_exit_2_with_one_clear_line(string args, string message)
    {
        var (code, _, errors) = await Run(args.Split(' '));

        code.Should().Be(Sample.BadArguments);
        errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should().StartWith("error: ").And.Contain(message);
    }

    [Fact]
    public async Task Missing_data_with_no_download_exits_2()
    {
        var (code, _, errors) = await Run("--data-path", Path.Combine(_dir.FullName, "none"), "--no-download");
        code.Should().Be(Sample.BadArguments);
        errors.Should().Contain("CIFAR-100 is not in").And.Contain("--no-download");
    }

    [Fact]
    public async Task Help_documents_every_flag()
    {
        var (code, output, _) = await Run("--help");
        code.Should().Be(Sample.Ok);
        foreach (var flag in new[]
                 {
                     "--lr", "--lr-decay-schedule", "--lr-decay-rate", "--weight-decay", "--epochs", "--batch-size", "--hskd", "--backbone-weight",
                     "--b1-weight", "--b2-weight", "--b3-weight", "--ce-weight", "--kd-weight", "--coeff-decay", "--cos-max", "--cos-min", "--alpha-t",
                     "--classifier-type", "--data-type", "--data-path", "--experiments-dir", "--experiments-name", "--resume", "--seed", "--device",
                     "--base-width", "--neck-width", "--train-limit", "--test-limit", "--precision", "--no-tf32",
                 })
        {
            output.Should().Contain(flag + " ");
        }
    }

    [Fact]
    public void Defaults_are_the_papers_recipe_and_the_config_round_trips()
    {
        var (config, error, _) = SampleCommandLine.Parse([], TextWriter.Null);
        error.Should().BeNull();
        config.Should().BeEquivalentTo(new ExperimentConfig());
        config!.Lr.Should().Be(0.1);
        config.LrDecaySchedule.Should().Equal(150, 225);
        config.BackboneWeight.Should().Be(3.0);
        config.CeWeight.Should().Be(0.2);
        config.KdWeight.Should().Be(0.8);
        config.CoeffDecay.Should().Be("cos");
        config.ClassifierType.Should().Be("resnet18_dtskd");
        config.Seed.Should().Be(27);

        var (custom, _, _) = SampleCommandLine.Parse(["--lr", "0.05", "--lr-decay-schedule", "3", "7", "--hskd", "0", "--data-type", "fashion-mnist", "--train-limit", "100"], TextWriter.Null);
        ExperimentOutputs.WriteConfig(_dir.FullName, custom!);
        ExperimentOutputs.ReadConfig(_dir.FullName).Should().BeEquivalentTo(custom);
        custom!.LrDecaySchedule.Should().Equal(3, 7);
        custom.Hskd.Should().BeFalse();
        custom.ResolvedDataPath.Should().Be("/usr/share/datasets/fashion-mnist");
    }

    private (string Archive, long Size, string Md5) MakeArchive(bool truncate)
    {
        var source = Directory.CreateDirectory(Path.Combine(_dir.FullName, "src", Cifar100Download.FolderName));
        File.WriteAllBytes(Path.Combine(source.FullName, "train.bin"), CifarRecords(30, 3));
        File.WriteAllBytes(Path.Combine(source.FullName, "test.bin"), CifarRecords(10, 4));
        var archive = Path.Combine(_dir.FullName, "served.tar.gz");
        using (var file = File.Create(archive))
        using (var gzip = new GZipStream(file, CompressionLevel.Fastest))
        {
            TarFile.CreateFromDirectory(source.FullName, gzip, includeBaseDirectory: true);
        }

        if (truncate)
        {
            File.WriteAllBytes(archive, File.ReadAllBytes(archive)[..^4000]);
        }

        var bytes = File.ReadAllBytes(archive);
#pragma warning disable CA5351 // The format's published checksum is an MD5.
        return (archive, bytes.Length, Convert.ToHexStringLower(MD5.HashData(bytes)));
#pragma warning restore CA5351
    }

    [Fact]
    public async Task Download_checks_size_and_md5_extracts_and_then_reuses_the_data()
    {
        var (archive, size, md5) = MakeArchive(truncate: false);
        var data = Path.Combine(_dir.FullName, "data");
        var reports = new List<(long, long)>();

        var folder = await Cifar100Download.EnsureAsync(data, new Sync<(long, long)>(reports.Add), new Uri(archive), size, md5);

        folder.Should().Be(Path.Combine(data, Cifar100Download.FolderName));
        using (var train = CifarReader.LoadCifar100(folder, train: true))
        {
            train.Count.Should().Be(30);
        }

        reports.Should().NotBeEmpty().And.EndWith((size, size));
        Directory.GetFileSystemEntries(data).Select(Path.GetFileName).Should().BeEquivalentTo(Cifar100Download.FolderName, Cifar100Download.ArchiveName);

        File.Delete(archive);
        (await Cifar100Download.EnsureAsync(data, null, new Uri(archive), size, md5)).Should().Be(folder, "existing data is used as is");
    }

    [Fact]
    public async Task A_checksum_mismatch_is_a_clear_error_and_leaves_nothing_behind()
    {
        var (archive, size, _) = MakeArchive(truncate: false);
        var data = Path.Combine(_dir.FullName, "data");

        var act = () => Cifar100Download.EnsureAsync(data, null, new Uri(archive), size, "0123456789abcdef0123456789abcdef");

        (await act.Should().ThrowAsync<InvalidDataException>()).WithMessage("*MD5*expected*0123456789abcdef0123456789abcdef*");
        Directory.GetFileSystemEntries(data).Should().BeEmpty();
    }

    [Fact]
    public async Task A_truncated_archive_is_a_clear_error_and_leaves_nothing_behind()
    {
        var (archive, size, md5) = MakeArchive(truncate: true);
        var data = Path.Combine(_dir.FullName, "data");

        var act = () => Cifar100Download.EnsureAsync(data, null, new Uri(archive), size, md5);

        (await act.Should().ThrowAsync<InvalidDataException>()).WithMessage("*not a complete tar.gz*");
        Directory.GetFileSystemEntries(data).Should().BeEmpty();
    }

    [Fact]
    public async Task One_epoch_end_to_end_writes_every_output_and_resumes()
    {
        var data = WriteCifar100(train: 300, test: 100);
        var experiments = Path.Combine(_dir.FullName, "experiments");
        string[] common = ["--data-path", data, "--experiments-dir", experiments, "--experiments-name", "tiny", "--base-width", "4", "--neck-width", "8",
            "--batch-size", "64", "--best-after", "0", "--log-interval", "2", "--device", "cpu"];

        var (code, output, errors) = await Run([.. common, "--epochs", "1"]);

        errors.Should().BeEmpty();
        code.Should().Be(Sample.Ok, output);
        var run = Path.Combine(experiments, "tiny");
        foreach (var file in new[] { "config.json", "metrics.csv", "last.ckpt", "best.ckpt", "train.log", "accuracy.png", "loss.png", "schedule.png", "report.md" })
        {
            File.Exists(Path.Combine(run, file)).Should().BeTrue(file);
        }

        File.ReadAllLines(Path.Combine(run, "metrics.csv")).Should().HaveCount(2);
        File.ReadAllText(Path.Combine(run, "report.md")).Should().Contain("| backbone |").And.Contain("| branch 3 |").And.Contain("Wall time");
        File.ReadAllBytes(Path.Combine(run, "accuracy.png"))[1..4].Should().Equal("PNG"u8.ToArray());
        output.Should().Contain("epoch 1/1").And.Contain("Done: final backbone top-1");

        var (resumed, resumedOutput, _) = await Run([.. common, "--epochs", "2", "--resume"]);

        resumed.Should().Be(Sample.Ok, resumedOutput);
        resumedOutput.Should().Contain("Resuming").And.Contain("epoch 2/2").And.NotContain("epoch 1/2  step");
        File.ReadAllLines(Path.Combine(run, "metrics.csv")).Should().HaveCount(3);
    }

    [Fact]
    public async Task Cancelling_saves_a_checkpoint_and_exits_130()
    {
        var data = WriteCifar100(train: 200, test: 50);
        var experiments = Path.Combine(_dir.FullName, "experiments");
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var console = new TestConsole();
        using var errors = new StringWriter();

        var code = await Sample.RunAsync(
            ["--data-path", data, "--experiments-dir", experiments, "--experiments-name", "stop", "--base-width", "4", "--neck-width", "8", "--device", "cpu", "--epochs", "3"],
            console, errors, cts.Token);

        code.Should().Be(Sample.Stopped);
        File.Exists(Path.Combine(experiments, "stop", "last.ckpt")).Should().BeTrue();
        console.Output.Should().Contain("--resume");
    }

    [Theory]
    [InlineData("cpu", "TorchSharp-cpu")]
    [InlineData("cuda-linux", "TorchSharp-cuda-linux")]
    [InlineData("cuda-windows", "TorchSharp-cuda-windows")]
    public void The_backend_property_selects_the_libtorch_bundle(string backend, string package)
    {
        var root = typeof(SampleTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "RepoRoot").Value!;
        var project = Path.Combine(root, "samples", "DTSKD.Samples.Cifar100", "DTSKD.Samples.Cifar100.csproj");
        var info = new ProcessStartInfo("dotnet", ["msbuild", project, "-getItem:PackageReference", $"-p:TorchSharpBackend={backend}", "-nologo"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();

        process.ExitCode.Should().Be(0, output);
        var bundles = new[] { "TorchSharp-cpu", "TorchSharp-cuda-linux", "TorchSharp-cuda-windows" }.Where(b => output.Contains($"\"{b}\"", StringComparison.Ordinal));
        bundles.Should().Equal(package);
    }

    private sealed class Sync<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
