using System.Runtime.InteropServices;
using DTSKD.Core;
using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using DTSKD.Samples.Cifar100;
using Microsoft.Extensions.Logging;
using Spectre.Console;
using static TorchSharp.torch;

// Reproduces the DTSKD paper's CIFAR-100 ResNet-18 experiment with DTSKD.Core's building blocks:
// a multi-branch ResNet, the dual-teacher loss (historical + structural teacher), and the trainer.
// Run with --help for every option.
var stop = new SampleStop();

// Ctrl+C (SIGINT) and SIGTERM (timeout, docker stop, schedulers): finish the current step, save a checkpoint and exit.
// A second signal ends the process at once.
using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, stop.Handle);
using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, stop.Handle);

// An exception on another thread ends the process too: one line and a log of the stack, never an abort.
AppDomain.CurrentDomain.UnhandledException += (_, e) => Environment.Exit(Sample.Crash((Exception)e.ExceptionObject, Console.Error, null));
if (Console.IsOutputRedirected)
{
    // Plain output: one line per message, however long.
    AnsiConsole.Profile.Width = 500;
}

return await Sample.RunAsync(args, AnsiConsole.Console, Console.Error, stop);

namespace DTSKD.Samples.Cifar100
{
    /// <summary>The sample's steps, callable in-process (the tests run it this way).</summary>
    public static class Sample
    {
        /// <summary>The run finished.</summary>
        public const int Ok = 0;

        /// <summary>Bad data or a bad checkpoint (missing or unreadable files, a checkpoint of another run).</summary>
        public const int Failed = 1;

        /// <summary>Bad arguments, or a run folder that cannot be used as asked (an existing run, not writable).</summary>
        public const int BadArguments = 2;

        /// <summary>The training diverged (NaN or infinite loss); the last checkpoint before it is intact.</summary>
        public const int Diverged = 3;

        /// <summary>A file of the run could not be written (disk full, no permission); what was there before is intact.</summary>
        public const int CannotWrite = 4;

        /// <summary>Another process is training in the run folder.</summary>
        public const int InUse = 5;

        /// <summary>Something unexpected (a bug): one line, and the stack in a log file it names.</summary>
        public const int Internal = 70;

        /// <summary>Stopped by Ctrl+C (SIGINT) after saving a checkpoint.</summary>
        public const int Interrupted = 130;

        /// <summary>Stopped by SIGTERM after saving a checkpoint.</summary>
        public const int Terminated = 143;

        /// <summary>Runs the command line; every outcome is an exit code and, on failure, one line on <paramref name="errors"/>.</summary>
        /// <param name="args">The command line.</param>
        /// <param name="console">Where progress goes.</param>
        /// <param name="errors">Where the one line of a failure goes.</param>
        /// <param name="stop">Ctrl+C and SIGTERM.</param>
        /// <param name="cifar100Source">Where to download CIFAR-100 from (tests give a local file).</param>
        /// <param name="configureTrainer">Called with the trainer before it runs (tests add callbacks that inject faults).</param>
        public static async Task<int> RunAsync(
            string[] args, IAnsiConsole console, TextWriter errors, SampleStop stop, Uri? cifar100Source = null, Action<Trainer>? configureTrainer = null)
        {
            ArgumentNullException.ThrowIfNull(args);
            ArgumentNullException.ThrowIfNull(console);
            ArgumentNullException.ThrowIfNull(errors);
            ArgumentNullException.ThrowIfNull(stop);
            var run = new RunState();
            try
            {
                return await RunCoreAsync(args, console, errors, stop, cifar100Source, configureTrainer, run).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                return Crash(ex, errors, run.Folder, args);
            }
        }

        /// <summary>The last resort: one line naming the error and a log file with its stack (in the run folder when there is one).</summary>
        /// <returns><see cref="Internal"/>.</returns>
        public static int Crash(Exception error, TextWriter errors, string? runFolder, IEnumerable<string>? args = null)
        {
            ArgumentNullException.ThrowIfNull(error);
            ArgumentNullException.ThrowIfNull(errors);
            var name = $"crash-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Environment.ProcessId}.log";
            var text = $"{DateTime.UtcNow:O} DTSKD.Samples.Cifar100 {string.Join(' ', args ?? [])}{Environment.NewLine}{SampleCommandLine.VersionText()}{Environment.NewLine}{error}{Environment.NewLine}";
            string? log = null;
            foreach (var folder in new[] { runFolder, Path.GetTempPath() }.Where(f => f is not null && Directory.Exists(f)))
            {
                try
                {
                    log = Path.Combine(folder!, name);
                    AtomicFile.WriteAllText(log, text);
                    break;
                }
                catch (IOException)
                {
                    log = null;
                }
            }

            var message = string.Join(" ", error.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            errors.WriteLine($"error: unexpected {error.GetType().Name}: {message} ({(log is null ? "no log could be written" : $"the details are in '{log}'")}; please report it).");
            return Internal;
        }

        private static async Task<int> RunCoreAsync(
            string[] args, IAnsiConsole console, TextWriter errors, SampleStop stop, Uri? cifar100Source, Action<Trainer>? configureTrainer, RunState run)
        {
            int Fail(int code, string message)
            {
                errors.WriteLine($"error: {message}");
                return code;
            }

            // 1. The command line (defaults: the paper's recipe).
            using var help = new StringWriter();
            var (request, error, helpShown) = SampleCommandLine.Parse(args, help);
            if (helpShown)
            {
                console.Write(new Text(help.ToString()));
                return Ok;
            }

            if (request is null)
            {
                return Fail(BadArguments, error!);
            }

            if (request.Tool is { } tool)
            {
                return await AfterTraining.RunAsync(tool, console, errors, stop.Token).ConfigureAwait(false);
            }

            // 2. A resumed run is the run's own configuration with what the command line changes.
            var config = request.Train!;
            var changes = new List<string>();
            if (config.Resume)
            {
                var (located, notFound) = RunContinuation.Locate(config);
                if (located is null)
                {
                    return Fail(BadArguments, notFound!);
                }

                ExperimentConfig saved;
                try
                {
                    saved = ExperimentOutputs.ReadConfig(located);
                }
                catch (Exception ex) when (ex is IOException or System.Text.Json.JsonException or InvalidDataException)
                {
                    return Fail(Failed, $"cannot resume '{located}': its config.json cannot be read ({ex.Message}).");
                }

                var (merged, applied, refused) = RunContinuation.Merge(saved, config, request.Given, located);
                if (merged is null)
                {
                    return Fail(BadArguments, refused!);
                }

                config = merged;
                changes.AddRange(applied);
            }

            // 3. Everything is checked before anything of the run is written: device, run folder, data, model, checkpoint.
            Device device;
            try
            {
                device = TrainingDevice.Choose(config.Device);
            }
            catch (NotSupportedException ex)
            {
                return Fail(BadArguments, "--" + ex.Message);
            }

            var folder = new RunFolder(config.RunDirectory);
            if (folder.WhyNotWritable() is { } notWritable)
            {
                return Fail(BadArguments, $"--experiments-dir '{config.ExperimentsDir}' cannot hold the run '{folder.Path}': {notWritable}.");
            }

            if (config.Resume && !File.Exists(folder.LastCheckpoint))
            {
                return Fail(BadArguments, $"--resume: '{folder.LastCheckpoint}' does not exist (the run never finished an epoch or saved on a stop).");
            }

            if (config.Resume)
            {
                try
                {
                    var done = TrainerCheckpoint.ReadSummary(folder.LastCheckpoint);
                    var least = done.EpochsDone + (done.StepsDone > 0 ? 1 : 0);
                    if (config.Epochs < least)
                    {
                        return Fail(BadArguments, $"--epochs {config.Epochs}: the run has already trained {done.EpochsDone} epochs{(done.StepsDone > 0 ? $" and {done.StepsDone} steps of the next" : string.Empty)}; give at least {least}.");
                    }
                }
                catch (InvalidDataException ex)
                {
                    return Fail(Failed, $"cannot resume from '{folder.LastCheckpoint}': {ex.Message}");
                }
            }

            var existing = folder.ExistingRun();
            if (!config.Resume && !config.Overwrite && existing.Count > 0)
            {
                return Fail(BadArguments,
                    $"'{folder.Path}' already holds a run ({string.Join(", ", existing)}): continue it with --resume, choose another --experiments-name, or start afresh with --overwrite (the old run is moved aside, not deleted).");
            }

            // One training per folder, from here to the end (the lock dies with the process).
            RunFolder.Claim claim;
            try
            {
                claim = folder.Take();
            }
            catch (RunFolderInUseException ex)
            {
                return Fail(InUse, ex.Message);
            }

            using (claim)
            {
                return await TrainAsync(args, console, errors, stop, cifar100Source, configureTrainer, run, config, changes, device, folder, claim, existing).ConfigureAwait(false);
            }
        }

        private static async Task<int> TrainAsync(
            string[] args, IAnsiConsole console, TextWriter errors, SampleStop stop, Uri? cifar100Source, Action<Trainer>? configureTrainer, RunState run,
            ExperimentConfig config, List<string> changes, Device device, RunFolder folder, RunFolder.Claim claim, IReadOnlyList<string> existing)
        {
            int Fail(int code, string message)
            {
                errors.WriteLine($"error: {message}");
                return code;
            }

            if (config.Threads > Environment.ProcessorCount)
            {
                console.MarkupLineInterpolated($"[yellow]warning:[/] --threads {config.Threads} is more than this machine's {Environment.ProcessorCount} cores; LibTorch runs slower with more threads than cores.");
            }

            set_num_threads(config.Threads);
            DatasetSplits data;
            IReadOnlyList<Core.Images.BadImage> skipped;
            try
            {
                (data, skipped) = await SampleData.LoadAsync(config, console, stop.Token, cifar100Source).ConfigureAwait(false);
            }
            catch (Core.Images.ImageFolderException ex)
            {
                // Every problem on a line of its own, then what to do.
                foreach (var problem in ex.Problems.Count > 1 ? ex.Problems : [])
                {
                    errors.WriteLine($"error: {problem}");
                }

                return Fail(Failed, ex.Summary.Replace("(ImageFolderOptions.SkipBadImages, the sample's --skip-bad-images)", "with --skip-bad-images", StringComparison.Ordinal));
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or InvalidDataException or HttpRequestException or IOException)
            {
                return Fail(Failed, ex.Message);
            }
            catch (OperationCanceledException)
            {
                return Fail(stop.ExitCode, "stopped while downloading the data; nothing of the run was written.");
            }

            using (data)
            {
                var (train, test) = (data.Train, data.Test);

                // 4. The model: a multi-branch ResNet whose backbone head is used at test time.
                manual_seed(config.Seed);
                using var model = MultiBranchModels.Create(config.ClassifierType, config.ModelOptions(train.ClassCount, train.Shape.Channels));

                // 5. The objective: by default the two teachers composed by the dual-teacher loss (built for this model, so the
                // branches agree); --objective ce trains the cross-entropy baseline on the same engine.
                var loss = SampleRecipe.Objective(config, model, train.Count, device);
                using var ownsLoss = loss as IDisposable;

                // 6. The trainer: SGD + Nesterov, multi-step lr, per-head evaluation, checkpoints in the run folder.
                var precision = SampleRecipe.Precision(config, device);
                var log = new FileLoggerProvider(Path.Combine(folder.Path, "train.log"), console);
                using var logs = LoggerFactory.Create(b => b.AddProvider(log));
                var logger = logs.CreateLogger("DTSKD");
                Trainer trainer;
                try
                {
                    trainer = new Trainer(model, loss, train, test, data.Preprocessing, SampleRecipe.TrainerOptions(config, device, precision, folder.Path), logger);
                }
                catch (ArgumentException ex)
                {
                    return Fail(BadArguments, ex.Message.Split(" (Parameter", 2)[0].Replace("BatchSize", "--batch-size", StringComparison.Ordinal));
                }

                using (trainer)
                {
                    if (config.Resume)
                    {
                        try
                        {
                            trainer.LoadCheckpoint(folder.LastCheckpoint);
                        }
                        catch (Exception ex) when (ex is InvalidDataException or FileNotFoundException)
                        {
                            return Fail(Failed, $"cannot resume from '{folder.LastCheckpoint}': {ex.Message}");
                        }
                    }

                    // 7. Only now is the run folder written: the old run moved aside (--overwrite), config.json, the log marker.
                    try
                    {
                        if (config.Overwrite && existing.Count > 0)
                        {
                            console.MarkupLineInterpolated($"Moved the earlier run to '{folder.MoveAside(claim)}'.");
                        }

                        claim.Commit();
                        run.Folder = folder.Path;
                        ExperimentOutputs.WriteConfig(folder.Path, config with
                        {
                            DeviceUsed = device.type.ToString(),
                            PrecisionUsed = precision.ToString(),
                            ClassNames = config.DataType == SampleData.Folder ? [.. train.ClassNames!] : null,
                            Mean = config.DataType == SampleData.Folder ? [.. data.Preprocessing.Mean] : null,
                            Std = config.DataType == SampleData.Folder ? [.. data.Preprocessing.Std] : null,
                        });
                        ExperimentOutputs.WriteSkipped(folder.Path, skipped);
                        folder.MarkLog(config.Resume ? $"resume at epoch {trainer.NextEpoch + 1}, step {trainer.NextStep}" : "start", args);
                        log.Open();
                    }
                    catch (RunFolderInUseException ex)
                    {
                        return Fail(InUse, ex.Message);
                    }
                    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                    {
                        return Fail(CannotWrite, ex.Message);
                    }

                    if (config.Resume)
                    {
                        console.MarkupLineInterpolated($"Resuming '{folder.Path}' at epoch {trainer.NextEpoch + 1}, step {trainer.NextStep}.");
                        foreach (var change in changes)
                        {
                            console.MarkupLineInterpolated($"  applies from here: {change}");
                        }
                    }

                    console.MarkupLineInterpolated(
                        $"[bold]{config.ClassifierType}[/] on [bold]{train.Name}[/] ({train.Count} train / {test.Count} test images), {config.Epochs} epochs, device {device.type}, {precision}, {config.Threads} threads, outputs in '{folder.Path}'.");

                    // 8. Train: the view shows progress, the outputs callback writes metrics.csv and the plots after every epoch, and
                    //    TensorBoard gets every figure.
                    var outputs = new ExperimentOutputs(folder.Path, config);
                    var view = new ProgressView(console, model.BranchCount + 1);
                    trainer.Callbacks.Add(view);
                    trainer.Callbacks.Add(outputs);
                    if (config.TensorBoard)
                    {
                        var tensorBoard = new TensorBoardCallback(Path.Combine(folder.Path, "tensorboard"));
                        trainer.Callbacks.Add(tensorBoard);
                        console.MarkupLineInterpolated($"Follow it in TensorBoard: [bold]tensorboard --logdir {tensorBoard.LogDirectory}[/]");
                    }

                    configureTrainer?.Invoke(trainer);
                    TrainingResult result;
                    try
                    {
                        result = view.Show(() => trainer.Run(stop.Token), trainer.Metrics);

                        // 9. The report: best (after --best-after) and final top-1 of every head.
                        outputs.WriteReport(result, device.type.ToString());
                    }
                    catch (TrainingDivergedException ex)
                    {
                        var kept = File.Exists(folder.LastCheckpoint) ? $"'{folder.LastCheckpoint}' holds the last good epoch" : "no epoch had finished, so there is no checkpoint";
                        return Fail(Diverged, $"{ex.Message.Split(" the last checkpoint", 2)[0].TrimEnd(';', ' ')}; {kept}.");
                    }
                    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                    {
                        return Fail(CannotWrite, $"{ex.Message} Training stopped; '{folder.LastCheckpoint}' holds the last epoch saved.");
                    }

                    if (result.Cancelled)
                    {
                        console.MarkupLineInterpolated($"Stopped at epoch {trainer.NextEpoch + 1}, step {trainer.NextStep}; checkpoint saved. Continue with --resume {folder.Path}.");
                        return stop.ExitCode;
                    }

                    console.MarkupLineInterpolated(
                        $"Done: final backbone top-1 {result.FinalTop1:F2}%, best over epochs {config.ResolvedBestAfter + 1}-{config.Epochs} {(result.BestTop1 is { } b ? $"{b:F2}% (epoch {result.BestEpoch + 1})" : "-")}. Report: '{Path.Combine(folder.Path, "report.md")}'.");
                    return Ok;
                }
            }
        }

        /// <summary>What a crash log needs to know about the run so far.</summary>
        private sealed class RunState
        {
            public string? Folder { get; set; }
        }
    }
}
