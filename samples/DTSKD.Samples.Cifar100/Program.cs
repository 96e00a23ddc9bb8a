using System.Diagnostics;
using DTSKD.Core;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using DTSKD.Samples.Cifar100;
using Microsoft.Extensions.Logging;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

// Reproduces the DTSKD paper's CIFAR-100 ResNet-18 experiment with DTSKD.Core's building blocks:
// a multi-branch ResNet, a historical teacher (per-sample memory), a structural teacher (backbone -> branches),
// the dual-teacher loss, and the trainer. Run with --help for every option.
using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    // First Ctrl+C: finish the current step, save a checkpoint and exit. A second one ends the process.
    e.Cancel = !stop.IsCancellationRequested;
    stop.Cancel();
};
if (Console.IsOutputRedirected)
{
    // Plain output: one line per message, however long.
    AnsiConsole.Profile.Width = 500;
}

return await Sample.RunAsync(args, AnsiConsole.Console, Console.Error, stop.Token);

namespace DTSKD.Samples.Cifar100
{
    /// <summary>The sample's steps, callable in-process (the tests run it this way).</summary>
    public static class Sample
    {
        public const int Ok = 0;
        public const int Failed = 1;
        public const int BadArguments = 2;
        public const int Stopped = 130;

        public static async Task<int> RunAsync(string[] args, IAnsiConsole console, TextWriter errors, CancellationToken cancellationToken, Uri? cifar100Source = null)
        {
            // 1. The command line (defaults: the paper's recipe).
            using var help = new StringWriter();
            var (config, error, helpShown) = SampleCommandLine.Parse(args, help);
            if (helpShown)
            {
                console.Write(new Text(help.ToString()));
                return Ok;
            }

            if (config is null)
            {
                errors.WriteLine($"error: {error}");
                return BadArguments;
            }

            var runDirectory = config.RunDirectory;
            var checkpoint = Path.Combine(runDirectory, "last.ckpt");
            if (config.Resume && !File.Exists(checkpoint))
            {
                errors.WriteLine($"error: --resume was given but '{checkpoint}' does not exist.");
                return BadArguments;
            }

            var device = config.Device switch
            {
                "cpu" => CPU,
                "cuda" when cuda.is_available() => CUDA,
                "cuda" => null,
                _ => cuda.is_available() ? CUDA : CPU,
            };
            if (device is null)
            {
                errors.WriteLine("error: --device cuda, but CUDA is not available (build with -p:TorchSharpBackend=cuda-linux or cuda-windows, see README).");
                return BadArguments;
            }

            // 2. The data: CIFAR-100 is downloaded (and checked) when missing.
            Core.Data.ImageDataset train, test;
            Core.Data.BatchAugmentation preprocessing;
            try
            {
                (train, test, preprocessing) = await SampleData.LoadAsync(config, console, cancellationToken, cifar100Source);
            }
            catch (SampleData.MissingDataException ex)
            {
                errors.WriteLine($"error: {ex.Message}");
                return config.Download ? Failed : BadArguments;
            }
            catch (InvalidDataException ex)
            {
                errors.WriteLine($"error: {ex.Message}");
                return Failed;
            }

            using (train)
            using (test)
            {
                Directory.CreateDirectory(runDirectory);
                ExperimentOutputs.WriteConfig(runDirectory, config);
                using var logs = LoggerFactory.Create(b => b.AddProvider(new FileLoggerProvider(Path.Combine(runDirectory, "train.log"))));
                var logger = logs.CreateLogger("DTSKD");

                // 3. The model: a multi-branch ResNet whose backbone head is used at test time.
                manual_seed(config.Seed);
                using var model = MultiBranchModels.Create(config.ClassifierType, new MultiBranchModelOptions
                {
                    ClassCount = train.ClassCount,
                    InputChannels = train.Channels,
                    BaseWidth = config.BaseWidth,
                    NeckWidth = config.NeckWidth,
                });

                // 4. The two teachers, composed by the dual-teacher loss.
                using var history = new HistoricalTeacher(train.Count, train.ClassCount, model.BranchCount + 1, device);
                var loss = new DualTeacherLoss(new DualTeacherLossOptions
                {
                    BackboneWeight = config.BackboneWeight,
                    BranchWeights = [config.B1Weight, config.B2Weight, config.B3Weight],
                    CeWeight = config.CeWeight,
                    KdWeight = config.KdWeight,
                    Temperature = config.Temperature,
                    UseHistoricalTeacher = config.Hskd,

                    // Labels and indices come from validated readers and the trainer's sampler: on a GPU, skip the
                    // per-step checks that would wait for the device.
                    ValidateInputs = device.type == DeviceType.CPU,
                    Schedule = config.CoeffDecay == "cos"
                        ? CoefficientSchedule.Cosine(config.CosMax, config.CosMin)
                        : CoefficientSchedule.Linear(config.AlphaT),
                }, history);

                // 5. The trainer: SGD + Nesterov, multi-step lr, per-head evaluation, checkpoints in the run folder.
                using var trainer = new Trainer(model, loss, train, test, preprocessing, new TrainerOptions
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
                    Precision = (config.Precision, device.type) switch
                    {
                        ("bf16", _) => TrainingPrecision.BFloat16,
                        ("fp16", _) => TrainingPrecision.Float16,
                        ("auto", DeviceType.CUDA) => TrainingPrecision.Float16,
                        _ => TrainingPrecision.Float32,
                    },
                    AllowTf32 = config.Tf32,
                    CheckpointDirectory = runDirectory,
                }, logger);
                if (config.Resume)
                {
                    trainer.LoadCheckpoint(checkpoint);
                    console.MarkupLineInterpolated($"Resuming '{runDirectory}' at epoch {trainer.NextEpoch + 1}, step {trainer.NextStep}.");
                }

                console.MarkupLineInterpolated(
                    $"[bold]{config.ClassifierType}[/] on [bold]{train.Name}[/] ({train.Count} train / {test.Count} test images), {config.Epochs} epochs, device {device.type}, outputs in '{runDirectory}'.");

                // 6. Train, showing progress and writing metrics.csv and the plots after every epoch.
                var clock = Stopwatch.StartNew();
                TrainingResult result;
                try
                {
                    result = new ProgressView(console, model.BranchCount + 1).Run(
                        progress => trainer.Run(new EpochWriter(progress, () => ExperimentOutputs.WriteEpoch(runDirectory, trainer.Metrics)), cancellationToken),
                        trainer.Metrics);
                }
                catch (TrainingDivergedException ex)
                {
                    errors.WriteLine($"error: {ex.Message}");
                    return Failed;
                }

                // 7. The report: best (after --best-after) and final top-1 of every head.
                ExperimentOutputs.WriteReport(runDirectory, config, result, clock.Elapsed, device.type.ToString());
                if (result.Cancelled)
                {
                    console.MarkupLineInterpolated($"Stopped at epoch {trainer.NextEpoch + 1}, step {trainer.NextStep}; checkpoint saved. Continue with the same command plus --resume.");
                    return Stopped;
                }

                console.MarkupLineInterpolated(
                    $"Done: final backbone top-1 {result.FinalTop1:F2}%, best after epoch {config.BestAfter} {(result.BestTop1 is { } b ? $"{b:F2}%" : "-")}. Report: '{Path.Combine(runDirectory, "report.md")}'.");
                return Ok;
            }
        }

        /// <summary>Forwards progress, and writes the run's files whenever an epoch completes.</summary>
        private sealed class EpochWriter(IProgress<TrainingProgress> inner, Action onEpoch) : IProgress<TrainingProgress>
        {
            public void Report(TrainingProgress value)
            {
                if (value.Completed is not null)
                {
                    onEpoch();
                }

                inner.Report(value);
            }
        }
    }
}
