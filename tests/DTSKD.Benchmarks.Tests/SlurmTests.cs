using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text.Json;
using SkiaSharp;

namespace DTSKD.Benchmarks.Tests;

/// <summary>
/// docs/slurm's scripts as written, on a one-node Slurm started here (Debian's slurm-wlm and munge, which .ci/run
/// installs; a stock configuration: MpiDefault=none; its own munged): the study's job array and the merge that waits for it, and a
/// data-parallel training of two ranks started by srun --mpi=pmix.
/// </summary>
public sealed class SlurmTests : IDisposable
{
    private static readonly string Repo = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../.."));
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-slurm-");
    private readonly List<Process> _daemons = [];

    public void Dispose()
    {
        foreach (var daemon in _daemons)
        {
            if (!daemon.HasExited)
            {
                daemon.Kill(entireProcessTree: true);
                daemon.WaitForExit();
            }

            daemon.Dispose();
        }

        _dir.Delete(recursive: true);
    }

    private static string Tool(string name) =>
        new[] { "/usr/sbin", "/usr/bin", "/sbin", "/bin" }.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException($"{name} is missing: install Debian's slurm-wlm and munge (apt-get install slurm-wlm munge), as .ci/run does.");

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private async Task<(int Code, string Output)> Run(string program, IEnumerable<string> args, IReadOnlyDictionary<string, string> environment, TimeSpan? limit = null)
    {
        // Submitted jobs write their slurm-<job>.out where they were submitted: here.
        var info = new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = _dir.FullName };
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        // A Slurm command that cannot reach its daemon retries for minutes: every command has a deadline.
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(limit ?? TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            return (-1, $"{Path.GetFileName(program)} did not answer in {limit ?? TimeSpan.FromSeconds(60)}");
        }

        return (process.ExitCode, (await output).Trim() + (await errors).Trim());
    }

    /// <summary>
    /// A munged, slurmctld and slurmd of the test's own (key, socket, configuration and ports in its folder), so that the
    /// machine's munge, running, stopped or stale, plays no part.
    /// </summary>
    private async Task<Dictionary<string, string>> StartSlurm()
    {
        var socket = Path.Combine(_dir.FullName, "munge.socket");
        var key = Path.Combine(_dir.FullName, "munge.key");
        (await Run(Tool("mungekey"), ["--create", $"--keyfile={key}"], new Dictionary<string, string>())).Code.Should().Be(0, "munge needs a key");
        var munged = new ProcessStartInfo(Tool("munged"),
            ["--foreground", "--force", $"--socket={socket}", $"--key-file={key}", $"--pid-file={_dir.FullName}/munged.pid",
             $"--log-file={_dir.FullName}/munged.log", $"--seed-file={_dir.FullName}/munged.seed"]) { RedirectStandardError = true };
        var munge = Process.Start(munged)!;
        _daemons.Add(munge);
        var clock = Stopwatch.StartNew();
        while ((await Run(Tool("munge"), ["--no-input", $"--socket={socket}"], new Dictionary<string, string>(), TimeSpan.FromSeconds(10))).Code != 0)
        {
            if (munge.HasExited || clock.Elapsed > TimeSpan.FromSeconds(30))
            {
                throw new TimeoutException($"the test's munged did not come up: {(munge.HasExited ? await munge.StandardError.ReadToEndAsync() : "no answer in 30 s")}");
            }

            await Task.Delay(200);
        }

        var host = (await Run("/bin/hostname", ["-s"], new Dictionary<string, string>())).Output;
        var conf = Path.Combine(_dir.FullName, "slurm.conf");
        foreach (var folder in new[] { "state", "spool" })
        {
            Directory.CreateDirectory(Path.Combine(_dir.FullName, folder));
        }

        // The study script asks for 8 cores and 16 GB a task: the node says it has them (config_overrides), as a cluster node would.
        await File.WriteAllTextAsync(conf, $"""
            ClusterName=dtskd-test
            SlurmctldHost={host}
            SlurmctldPort={FreePort()}
            SlurmdPort={FreePort()}
            SlurmUser=root
            SlurmdUser=root
            AuthType=auth/munge
            AuthInfo=socket={socket}
            StateSaveLocation={_dir.FullName}/state
            SlurmdSpoolDir={_dir.FullName}/spool
            SlurmctldPidFile={_dir.FullName}/slurmctld.pid
            SlurmdPidFile={_dir.FullName}/slurmd.pid
            SlurmctldLogFile={_dir.FullName}/slurmctld.log
            SlurmdLogFile={_dir.FullName}/slurmd.log
            ProctrackType=proctrack/linuxproc
            TaskPlugin=task/none
            SelectType=select/cons_tres
            SelectTypeParameters=CR_CPU
            SlurmdParameters=config_overrides
            ReturnToService=2
            SchedulerType=sched/backfill
            JobCompType=jobcomp/none
            AccountingStorageType=accounting_storage/none
            NodeName={host} CPUs=16 RealMemory=65536 State=UNKNOWN
            PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
            """);
        var environment = new Dictionary<string, string> { ["SLURM_CONF"] = conf };
        foreach (var (daemon, args) in new (string, string[])[] { ("slurmctld", ["-D", "-i", "-f", conf]), ("slurmd", ["-D", "-f", conf]) })
        {
            var info = new ProcessStartInfo(Tool(daemon), args) { RedirectStandardOutput = false, RedirectStandardError = false };
            info.Environment["SLURM_CONF"] = conf;
            _daemons.Add(Process.Start(info)!);
        }

        clock.Restart();
        while (clock.Elapsed < TimeSpan.FromSeconds(90))
        {
            var (code, state) = await Run(Tool("sinfo"), ["-h", "-o", "%t"], environment, TimeSpan.FromSeconds(15));
            if (code == 0 && state.Trim() == "idle")
            {
                return environment;
            }

            await Task.Delay(1000);
        }

        var log = File.ReadAllText(Path.Combine(_dir.FullName, "slurmctld.log"));
        throw new TimeoutException($"the test Slurm did not come up in 90 s: {log[Math.Max(0, log.Length - 2000)..]}");
    }

    /// <summary>Waits until none of the jobs is queued or running; returns each job's final state.</summary>
    private async Task<Dictionary<string, string>> Wait(IReadOnlyDictionary<string, string> environment, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < limit)
        {
            var (_, queue) = await Run(Tool("squeue"), ["-h", "-o", "%i %T %r"], environment);
            var queued = queue.Split('\n', StringSplitOptions.RemoveEmptyEntries);

            // A job whose dependency failed waits forever: cancel it, and let its failed dependency speak.
            if (queued.Length > 0 && queued.All(q => q.EndsWith("DependencyNeverSatisfied", StringComparison.Ordinal)))
            {
                await Run(Tool("scancel"), [.. queued.Select(q => q.Split(' ')[0])], environment);
                await Task.Delay(2000);
                continue;
            }

            if (queued.Length == 0)
            {
                var (_, done) = await Run(Tool("scontrol"), ["show", "job", "-o"], environment);
                return done.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                    .Select(l => (Id: System.Text.RegularExpressions.Regex.Match(l, @"JobId=(\d+)").Groups[1].Value, State: System.Text.RegularExpressions.Regex.Match(l, @"JobState=(\w+)").Groups[1].Value))
                    .ToDictionary(j => j.Id, j => j.State);
            }

            await Task.Delay(2000);
        }

        var (_, left) = await Run(Tool("squeue"), ["-h", "-o", "%i %T %r"], environment);
        var outputs = string.Join(Environment.NewLine, Directory.GetFiles(_dir.FullName, "slurm-*.out").Select(f => $"{Path.GetFileName(f)}: {File.ReadAllText(f)}"));
        throw new TimeoutException($"the jobs did not finish in {limit}; still queued: {left}{Environment.NewLine}{outputs}");
    }

    private static void WritePngs(string root, string split, int first, int count)
    {
        static byte[] Idx(string name, int header)
        {
            using var gzip = new GZipStream(File.OpenRead(Path.Combine("/usr/share/datasets/fashion-mnist", name)), CompressionMode.Decompress);
            using var bytes = new MemoryStream();
            gzip.CopyTo(bytes);
            return bytes.ToArray()[header..];
        }

        var (images, labels) = (Idx("train-images-idx3-ubyte.gz", 16), Idx("train-labels-idx1-ubyte.gz", 8));
        for (var i = first; i < first + count; i++)
        {
            var folder = Directory.CreateDirectory(Path.Combine(root, split, $"c{labels[i]}")).FullName;
            using var bitmap = new SKBitmap(new SKImageInfo(28, 28, SKColorType.Gray8, SKAlphaType.Opaque));
            images.AsSpan(i * 784, 784).CopyTo(bitmap.GetPixelSpan());
            using var image = SKImage.FromBitmap(bitmap);
            using var png = image.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(Path.Combine(folder, $"{i:D5}.png"), png.ToArray());
        }
    }

    [Fact]
    public void Docs_scaling_shows_the_scripts_this_test_runs_verbatim()
    {
        var doc = File.ReadAllText(Path.Combine(Repo, "docs/scaling.md"));
        foreach (var script in new[] { "study.sbatch", "submit-study.sh", "train.sbatch" })
        {
            doc.Should().Contain("```bash\n" + File.ReadAllText(Path.Combine(Repo, "docs/slurm", script)).TrimEnd() + "\n```", script);
        }
    }

    [Fact]
    public async Task The_documented_job_array_merge_and_data_parallel_training_run_on_a_stock_slurm()
    {
        var slurm = await StartSlurm();

        // The published layout the scripts expect: $DTSKD/bench and $DTSKD/sample.
        var dtskd = Directory.CreateDirectory(Path.Combine(_dir.FullName, "dtskd")).FullName;
        File.CreateSymbolicLink(Path.Combine(dtskd, "bench"), AppContext.BaseDirectory.TrimEnd('/'));
        var sample = typeof(ServeLoadBench).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "SampleDll").Value!;
        File.CreateSymbolicLink(Path.Combine(dtskd, "sample"), Path.GetDirectoryName(sample)!);
        var data = Path.Combine(_dir.FullName, "photos");
        WritePngs(data, "train", 0, 160);
        WritePngs(data, "val", 160, 48);
        var study = Path.Combine(_dir.FullName, "study");
        var environment = new Dictionary<string, string>(slurm)
        {
            ["DTSKD"] = dtskd, ["STUDY"] = study, ["DATA"] = data, ["IMAGE_SIZE"] = "28", ["EPOCHS"] = "1", ["ROWS"] = "ce,dtskd", ["SEEDS"] = "1",
            ["RUNS"] = Path.Combine(_dir.FullName, "runs"),
        };

        // The study: two array tasks of one run each (sbatch's own variable for the array's size), then the merge that waits for both.
        var (submitted, jobs) = await Run("/bin/bash", [Path.Combine(Repo, "docs/slurm/submit-study.sh")], new Dictionary<string, string>(environment) { ["SBATCH_ARRAY_INX"] = "0-1" });
        submitted.Should().Be(0, jobs);
        jobs.Split('\n').Should().HaveCount(2, "the array and the merge");

        // The training: two ranks on the one node, one core each, on the sample's Fashion-MNIST.
        var (queued, training) = await Run(Tool("sbatch"),
        [
            "--parsable", "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1", Path.Combine(Repo, "docs/slurm/train.sbatch"),
            "--data-type", "fashion-mnist", "--data-path", "/usr/share/datasets/fashion-mnist", "--epochs", "1", "--train-limit", "64", "--test-limit", "32",
            "--batch-size", "16", "--base-width", "16", "--neck-width", "16", "--precision", "fp32", "--no-tensorboard",
        ], environment);
        queued.Should().Be(0, training);

        var states = await Wait(environment, TimeSpan.FromMinutes(8));
        states.Values.Should().OnlyContain(s => s == "COMPLETED", string.Join("; ", states) + Environment.NewLine +
            string.Join(Environment.NewLine, Directory.GetFiles(_dir.FullName, "slurm-*.out").Select(File.ReadAllText)));

        var report = await File.ReadAllTextAsync(Path.Combine(study, "report.md"));
        report.Should().Contain("| `ce` |").And.Contain("| `dtskd` |");
        var run = Path.Combine(_dir.FullName, "runs", "resnet18-2ranks");
        using var config = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(run, "config.json")));
        config.RootElement.GetProperty("world-size-used").GetInt32().Should().Be(2, "srun started two ranks that found each other through PMIx");
        File.Exists(Path.Combine(run, "last.ckpt")).Should().BeTrue();
    }
}
