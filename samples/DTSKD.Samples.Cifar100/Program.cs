using System.Runtime.InteropServices;
using DTSKD.Core;
using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using DTSKD.Samples.Cifar100;
using Microsoft.Extensions.Logging;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

// Reproduces the DTSKD paper's CIFAR-100 ResNet-18 experiment with DTSKD.Core's building blocks:
// a multi-branch ResNet, the dual-teacher loss (historical + structural teacher), and the trainer.
// Run with --help for every option.
var stop = new SampleStop();

// Ctrl+C (SIGINT) and SIGTERM (timeout, docker stop, schedulers): finish the current step, save a checkpoint and exit.
// A second signal ends the process at once.
using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, stop.Handle);
using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, stop.Handle);
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

        /// <summary>Bad data or a bad checkpoint (missing or unreadable files, a checkpoint of another run), or the training diverged.</summary>
        public const int Failed = 1;

        /// <summary>Bad arguments, or a run folder that cannot be used as asked (an existing run, not writable).</summary>
        public const int BadArguments = 2;

        /// <summary>Stopped by Ctrl+C (SIGINT) after saving a checkpoint.</summary>
        public const int Interrupted = 130;

        /// <summary>Stopped by SIGTERM after saving a checkpoint.</summary>
        public const int Terminated = 143;

        public static async Task<int> RunAsync(string[] args, IAnsiConsole console, TextWriter errors, SampleStop stop, Uri? cifar100Source = null)
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

            var config = request.Train!;

            // 2. Everything is checked before anything of the run is written: device, run folder, data, checkpoint.
            var device = config.Device switch
            {
                "cpu" => CPU,
                "cuda" when cuda.is_available() => CUDA,
                "cuda" => null,
                _ => cuda.is_available() ? CUDA : CPU,
            };
            if (device is null)
            {
                return Fail(BadArguments, "--device cuda, but CUDA is not available (build with -p:TorchSharpBackend=cuda-linux or cuda-windows, see README).");
            }

            var folder = new RunFolder(config.RunDirectory);
            if (folder.WhyNotWritable() is { } notWritable)
            {
                return Fail(BadArguments, $"--experiments-dir '{config.ExperimentsDir}' cannot hold the run '{folder.Path}': {notWritable}.");
            }

            var existing = folder.ExistingRun();
            if (config.Resume && !File.Exists(folder.LastCheckpoint))
            {
                return Fail(BadArguments, $"--resume was given but '{folder.LastCheckpoint}' does not exist.");
            }

            if (!config.Resume && !config.Overwrite && existing.Count > 0)
            {
                return Fail(BadArguments,
                    $"'{folder.Path}' already holds a run ({string.Join(", ", existing)}): continue it with --resume, choose another --experiments-name, or start afresh with --overwrite (the old run is moved aside, not deleted).");
            }

            set_num_threads(config.Threads);
            DatasetSplits data;
            try
            {
                data = await SampleData.LoadAsync(config, console, stop.Token, cifar100Source);
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

                // 3. The model: a multi-branch ResNet whose backbone head is used at test time.
                manual_seed(config.Seed);
                using var model = MultiBranchModels.Create(config.ClassifierType, config.ModelOptions(train.ClassCount, train.Shape.Channels));

                // 4. The two teachers, composed by the dual-teacher loss (built for this model, so the branches agree).
                using var loss = DualTeacherLoss.For(model, train.Count, SampleRecipe.LossOptions(config, device), device);

                // 5. The trainer: SGD + Nesterov, multi-step lr, per-head evaluation, checkpoints in the run folder.
                var precision = SampleRecipe.Precision(config, device);
                var log = new FileLoggerProvider(Path.Combine(folder.Path, "train.log"), console);
                using var logs = LoggerFactory.Create(b => b.AddProvider(log));
                var logger = logs.CreateLogger("DTSKD");
                using var trainer = new Trainer(model, loss, train, test, data.Preprocessing, new TrainerOptions
                {
                    Epochs = config.Epochs,
                    BatchSize = config.BatchSize,
                    EvalBatchSize = config.EvalBatchSize,
                    LearningRate = config.Lr,
                    Momentum = config.Momentum,
                    WeightDecay = config.WeightDecay,
                    Milestones = config.LrDecaySchedule,
                    Gamma = config.LrDecayRate,
                    Seed = config.Seed,
                    BestAfterEpoch = config.BestAfter,
                    LogInterval = config.LogInterval,
                    Device = device,
                    Precision = precision,
                    AllowTf32 = config.Tf32,
                    CheckpointDirectory = folder.Path,
                }, logger);
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

                // 6. Only now is the run folder written: the old run moved aside (--overwrite), config.json, the log marker.
                if (config.Overwrite && existing.Count > 0)
                {
                    console.MarkupLineInterpolated($"Moved the earlier run to '{folder.MoveAside()}'.");
                }

                Directory.CreateDirectory(folder.Path);
                ExperimentOutputs.WriteConfig(folder.Path, config with { DeviceUsed = device.type.ToString(), PrecisionUsed = precision.ToString() });
                folder.MarkLog(config.Resume ? $"resume at epoch {trainer.NextEpoch + 1}, step {trainer.NextStep}" : "start", args);
                log.Open();
                if (config.Resume)
                {
                    console.MarkupLineInterpolated($"Resuming '{folder.Path}' at epoch {trainer.NextEpoch + 1}, step {trainer.NextStep}.");
                }

                console.MarkupLineInterpolated(
                    $"[bold]{config.ClassifierType}[/] on [bold]{train.Name}[/] ({train.Count} train / {test.Count} test images), {config.Epochs} epochs, device {device.type}, {precision}, {config.Threads} threads, outputs in '{folder.Path}'.");

                // 7. Train: the view shows progress, the outputs callback writes metrics.csv and the plots after every epoch, and
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
                TrainingResult result;
                try
                {
                    result = view.Show(() => trainer.Run(stop.Token), trainer.Metrics);
                }
                catch (TrainingDivergedException ex)
                {
                    return Fail(Failed, ex.Message);
                }

                // 8. The report: best (after --best-after) and final top-1 of every head.
                outputs.WriteReport(result, device.type.ToString());
                if (result.Cancelled)
                {
                    console.MarkupLineInterpolated($"Stopped at epoch {trainer.NextEpoch + 1}, step {trainer.NextStep}; checkpoint saved. Continue with the same command plus --resume.");
                    return stop.ExitCode;
                }

                console.MarkupLineInterpolated(
                    $"Done: final backbone top-1 {result.FinalTop1:F2}%, best over epochs {config.ResolvedBestAfter + 1}-{config.Epochs} {(result.BestTop1 is { } b ? $"{b:F2}%" : "-")}. Report: '{Path.Combine(folder.Path, "report.md")}'.");
                return Ok;
            }
        }
    }
}
