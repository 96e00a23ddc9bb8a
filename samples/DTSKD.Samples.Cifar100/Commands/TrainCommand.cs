using DTSKD.Core;
using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using Microsoft.Extensions.Logging;
using Spectre.Console;
using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100;

/// <summary>
/// The main job: train one model with DTSKD.Core's building blocks (a multi-branch network, the dual-teacher loss, the
/// trainer) in a run folder that holds its configuration, metrics, plots, checkpoints, log and report.
/// </summary>
internal sealed class TrainCommand(IAnsiConsole console, TextWriter errors, SampleStop stop, Uri? cifar100Source, Action<Trainer>? configureTrainer, SampleRanks ranks)
{
    /// <summary>The run folder once something of the run is written there (for a crash log).</summary>
    public string? WrittenFolder { get; private set; }

    /// <summary>Checks everything, then trains; every outcome is an exit code and, on failure, one line.</summary>
    public async Task<int> RunAsync(string[] args, ExperimentConfig config, IReadOnlySet<string> given)
    {
        var (cleared, code, error) = Preflight.Check(config, given, claim: ranks.Speaks);
        if (cleared is null)
        {
            return Fail(code, error!);
        }

        using (cleared.Claim)
        {
            // Every rank has checked the folder before rank 0 writes into it.
            ranks.Barrier();
            return await TrainAsync(args, cleared).ConfigureAwait(false);
        }
    }

    private int Fail(int code, string message)
    {
        errors.WriteLine($"error: {message}");
        return code;
    }

    private async Task<int> TrainAsync(string[] args, Preflight.Cleared run)
    {
        var config = run.Config;
        if (config.Threads > Environment.ProcessorCount)
        {
            console.MarkupLineInterpolated($"[yellow]warning:[/] --threads {config.Threads} is more than this machine's {Environment.ProcessorCount} cores; LibTorch runs slower with more threads than cores.");
        }

        set_num_threads(config.Threads);
        var (loaded, code) = await LoadDataAsync(config).ConfigureAwait(false);
        if (loaded is not { } data)
        {
            return code;
        }

        using (data.Splits)
        {
            if (config.Tsne && data.Splits.Test.Count < TsneMap.MinPoints)
            {
                return Fail(Sample.BadArguments, $"--tsne maps the test set's backbone features; this test set has {data.Splits.Test.Count} images, fewer than the {TsneMap.MinPoints} a map needs (a larger --test-limit, or leave --tsne out).");
            }

            // The model: a multi-branch ResNet whose backbone head is used at test time, from random weights or around a
            // pretrained backbone (whose normalisation the images then take).
            var train = data.Splits.Train;
            manual_seed(config.Seed);
            PretrainedNetwork? pretrained;
            try
            {
                pretrained = config.Pretrained is null ? null : PretrainedStart.Load(config, train.ClassCount, train.Shape.Channels, console);
            }
            catch (Exception ex) when (ex is FileNotFoundException or InvalidDataException)
            {
                return Fail(Sample.Failed, $"--pretrained: {ex.Message}");
            }

            using var model = pretrained?.Model ?? MultiBranchModels.Create(config.ClassifierType, config.ModelOptions(train.ClassCount, train.Shape.Channels));
            model.BranchesDetached = config.DetachBranches;
            var preprocessing = pretrained is null ? data.Splits.Preprocessing : SampleData.Preprocessing(config, pretrained.Mean, pretrained.Std);

            // The objective: by default the two teachers composed by the dual-teacher loss (built for this model, so the
            // branches agree); --objective ce trains the cross-entropy baseline on the same engine.
            // With several ranks each history holds its rank's shard (N / R rows), which the trainer maps each sample to.
            var rows = ranks.Group is { WorldSize: > 1 } group ? DataParallel.ShardSize(train.Count, group) : train.Count;
            IMultiBranchObjective loss;
            try
            {
                loss = SampleRecipe.Objective(config, model, rows, run.Device);
            }
            catch (ArgumentException ex)
            {
                return Fail(Sample.BadArguments, ex.Message.Split(" (Parameter", 2)[0]);
            }

            using var ownsLoss = loss as IDisposable;

            // The trainer: SGD + Nesterov, multi-step lr, per-head evaluation, checkpoints in the run folder.
            var precision = SampleRecipe.Precision(config, run.Device);
            var log = new FileLoggerProvider(Path.Combine(run.Folder.Path, "train.log"), console);
            using var logs = LoggerFactory.Create(b => b.AddProvider(log));
            // A resumed run's batch size is its own, not the command line's that SampleRanks checked.
            if (config.BatchSize % ranks.WorldSize != 0)
            {
                return Fail(Sample.BadArguments, $"--batch-size {config.BatchSize} is the whole step's and does not split evenly over {ranks.WorldSize} ranks; give a multiple of {ranks.WorldSize}.");
            }

            Trainer trainer;
            try
            {
                var options = SampleRecipe.TrainerOptions(config, run.Device, precision, run.Folder.Path);

                // --batch-size is the whole step's, as the release's is over its GPUs: each rank trains its share.
                options.BatchSize = config.BatchSize / ranks.WorldSize;
                options.ProcessGroup = ranks.Group;
                options.SyncBatchNorm = config.SyncBatchNorm;
                options.FineTuning = pretrained is null ? null : PretrainedStart.Tuning(config, pretrained);

                // The folder as read now: every checkpoint records it, and the trainer refuses one of another folder.
                options.DataKey = data.Files is { } files ? FolderKey.Of(files) : null;
                trainer = new Trainer(model, loss, train, data.Splits.Test, preprocessing, options, logs.CreateLogger("DTSKD"));
            }
            catch (ArgumentException ex)
            {
                return Fail(Sample.BadArguments, ex.Message.Split(" (Parameter", 2)[0].Replace("BatchSize", "--batch-size", StringComparison.Ordinal));
            }

            int trained;
            using (trainer)
            {
                var started = Start(args, run, trainer, data, preprocessing, precision, log);
                trained = started != Sample.Ok ? started : Train(run, trainer, model.BranchCount + 1, pretrained);
            }

            // After the trainer has given the model back in float32: the best epoch's weights, as the release keeps them.
            return trained == Sample.Ok && config.Tsne && ranks.Speaks ? KeepTsne(run, model, data.Splits.Test, preprocessing) : trained;
        }
    }

    private async Task<((DatasetSplits Splits, IReadOnlyList<Core.Images.BadImage> Skipped, IReadOnlyList<Core.Images.ImageFolderFile>? Files)? Data, int Code)> LoadDataAsync(ExperimentConfig config)
    {
        try
        {
            return (await SampleData.LoadAsync(config, console, stop.Token, cifar100Source).ConfigureAwait(false), Sample.Ok);
        }
        catch (Core.Images.ImageFolderException ex)
        {
            // Every problem on a line of its own (one bad image too), then what to do.
            foreach (var problem in ex.Problems.Where(p => p != ex.Summary))
            {
                errors.WriteLine($"error: {problem}");
            }

            return (null, Fail(Sample.Failed, ex.Summary
                .Replace("(ImageFolderOptions.SkipBadImages, the sample's --skip-bad-images)", "with --skip-bad-images", StringComparison.Ordinal)
                .Replace("(ImageFolderOptions.CacheDirectory, the sample's --image-cache)", "with --image-cache", StringComparison.Ordinal)));
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or InvalidDataException or HttpRequestException or IOException)
        {
            return (null, Fail(Sample.Failed, ex.Message));
        }
        catch (OperationCanceledException)
        {
            return (null, Fail(stop.ExitCode, "stopped while downloading the data; nothing of the run was written."));
        }
    }

    /// <summary>A resumed run's checkpoint, then (only now) the run folder: the old run moved aside, config.json, the log marker.</summary>
    private int Start(string[] args, Preflight.Cleared run, Trainer trainer, (DatasetSplits Splits, IReadOnlyList<Core.Images.BadImage> Skipped, IReadOnlyList<Core.Images.ImageFolderFile>? Files) data, IBatchAugmentation preprocessing, TrainingPrecision precision, FileLoggerProvider log)
    {
        var (config, folder) = (run.Config, run.Folder);
        if (config.Resume && data.Files is { } files && FolderKey.Changes(folder.Path, files) is { } changed)
        {
            return Fail(Sample.Failed,
                $"cannot resume '{folder.Path}': the folder '{config.ResolvedDataPath}' has changed: {changed}. The historical teacher's rows and the held-out split belong to the files the run read: restore them, or train a new run (another --experiments-name).");
        }

        if (config.Resume)
        {
            try
            {
                trainer.LoadCheckpoint(folder.LastCheckpoint);
            }
            catch (Exception ex) when (ex is InvalidDataException or FileNotFoundException)
            {
                return Fail(Sample.Failed, $"cannot resume from '{folder.LastCheckpoint}': {ex.Message}");
            }
        }

        if (run.Claim is null)
        {
            // Not rank 0: the run folder is rank 0's to write.
            Announce(run, trainer, data.Splits, precision);
            return Sample.Ok;
        }

        try
        {
            if (config.Overwrite && run.Existing.Count > 0)
            {
                console.MarkupLineInterpolated($"Moved the earlier run to '{folder.MoveAside(run.Claim)}'.");
            }

            run.Claim.Commit();
            WrittenFolder = folder.Path;
            var folderData = config.DataType == SampleData.Folder;
            var train = data.Splits.Train;

            // The folder's identity, once, when the run starts: what a resume and an evaluation check it against.
            var dataKey = !config.Resume && data.Files is { } read ? FolderKey.Write(folder.Path, read) : config.DataKey;
            ExperimentOutputs.WriteConfig(folder.Path, config with
            {
                // As resolved now: evaluate --run and --resume from another directory find the same data.
                DataPath = config.DataPath is { } dataPath ? Path.GetFullPath(dataPath) : null,
                DeviceUsed = run.Device.type.ToString(),
                PrecisionUsed = precision.ToString(),
                WorldSizeUsed = ranks.WorldSize > 1 ? ranks.WorldSize : null,
                DataKey = dataKey,
                ClassNames = folderData ? [.. train.ClassNames!] : null,
                Mean = folderData || config.Pretrained is not null ? [.. preprocessing.Mean] : null,
                Std = folderData || config.Pretrained is not null ? [.. preprocessing.Std] : null,
            });
            ExperimentOutputs.WriteSkipped(folder.Path, data.Skipped);
            folder.MarkLog(config.Resume ? $"resume at epoch {trainer.NextEpoch + 1}, step {trainer.NextStep}" : "start", args);
            log.Open();
        }
        catch (RunFolderInUseException ex)
        {
            return Fail(Sample.InUse, ex.Message);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return Fail(Sample.CannotWrite, ex.Message);
        }

        Announce(run, trainer, data.Splits, precision);
        return Sample.Ok;
    }

    private void Announce(Preflight.Cleared run, Trainer trainer, DatasetSplits data, TrainingPrecision precision)
    {
        var config = run.Config;
        if (config.Resume)
        {
            console.MarkupLineInterpolated($"Resuming '{run.Folder.Path}' at epoch {trainer.NextEpoch + 1}, step {trainer.NextStep}.");
            foreach (var change in run.Changes)
            {
                console.MarkupLineInterpolated($"  applies from here: {change}");
            }
        }

        console.MarkupLineInterpolated(
            $"[bold]{config.ClassifierType}[/] on [bold]{data.Train.Name}[/] ({data.Train.Count} train / {data.Test.Count} test images), {config.Epochs} epochs, device {run.Device.type}, {precision}, {config.Threads} threads{(ranks.Group is { } group ? $", {group.Description}, batch {config.BatchSize / ranks.WorldSize} per rank{(config.SyncBatchNorm ? ", batch norms over all ranks" : string.Empty)}" : string.Empty)}, outputs in '{run.Folder.Path}'.");
    }

    /// <summary>--tsne: the best epoch's (or, before the best is counted, the last epoch's) test outputs and their t-SNE map.</summary>
    private int KeepTsne(Preflight.Cleared run, MultiBranchModule model, IImageSource test, IBatchAugmentation preprocessing)
    {
        var folder = run.Folder;
        var checkpoint = File.Exists(folder.BestCheckpoint) ? folder.BestCheckpoint : folder.LastCheckpoint;
        try
        {
            TrainerCheckpoint.LoadModel(checkpoint, model);
            console.MarkupLineInterpolated($"{TsneOutputs.Write(folder.Path, model, test, preprocessing, run.Device, run.Config.EvalBatchSize, run.Config.Seed, test.ClassNames)}");
            return Sample.Ok;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            return Fail(Sample.CannotWrite, $"--tsne: {ex.Message}");
        }
    }

    /// <summary>Trains with the progress view, the run's outputs and TensorBoard as callbacks, then writes the report.</summary>
    private int Train(Preflight.Cleared run, Trainer trainer, int heads, PretrainedNetwork? pretrained)
    {
        var (config, folder) = (run.Config, run.Folder);
        var outputs = new ExperimentOutputs(folder.Path, config);
        var view = new ProgressView(console, heads);
        if (ranks.Speaks)
        {
            trainer.Callbacks.Add(view);
            trainer.Callbacks.Add(outputs);
        }

        if (config.TensorBoard && ranks.Speaks)
        {
            var tensorBoard = new TensorBoardCallback(Path.Combine(folder.Path, "tensorboard"));
            trainer.Callbacks.Add(tensorBoard);
            console.MarkupLineInterpolated($"Follow it in TensorBoard: [bold]tensorboard --logdir {tensorBoard.LogDirectory}[/]");
        }

        configureTrainer?.Invoke(trainer);
        TrainingResult result;
        try
        {
            result = ranks.Speaks ? view.Show(() => trainer.Run(stop.Token), trainer.Metrics) : trainer.Run(stop.Token);
            if (ranks.Speaks)
            {
                outputs.WriteReport(result, run.Device.type.ToString());
            }
        }
        catch (TimeoutException ex)
        {
            // Another rank of a data-parallel run has stopped answering.
            var kept = File.Exists(folder.LastCheckpoint) ? $"'{folder.LastCheckpoint}' holds the last epoch saved (continue with --resume {folder.Path})" : "no epoch had finished, so there is no checkpoint";
            return Fail(Sample.Failed, $"{ex.Message} Training stopped; {kept}.");
        }
        catch (TrainingDivergedException ex)
        {
            var kept = File.Exists(folder.LastCheckpoint) ? $"'{folder.LastCheckpoint}' holds the last good epoch" : "no epoch had finished, so there is no checkpoint";
            // A file exported in eval mode has no batch norms to hold its activations in range: the likely cause, and its remedy.
            var folded = pretrained?.Notes.Any(n => n.StartsWith("The file has no batch norms", StringComparison.Ordinal)) == true
                ? " The pretrained file has no batch norms (an eval-mode export folds them): export it with them kept (docs/pretrained.md), or lower --lr."
                : "";
            return Fail(Sample.Diverged, $"{ex.Message.Split(" the last checkpoint", 2)[0].TrimEnd(';', ' ')}; {kept}.{folded}");
        }
        catch (TrainingDataException ex)
        {
            // A file of the training set vanished or broke under a streaming run: the trainer saved the finished steps first.
            var what = ex.InnerException?.Message ?? $"{ex.Message.Split(';')[0]}.";
            var kept = ex.Checkpoint is { } saved && File.Exists(saved)
                ? $"'{saved}' holds every step before it; put the data back as it was (the same files, sizes and times: the run checks them) and continue with --resume {folder.Path}"
                : "nothing could be saved";
            var at = ex.Step == trainer.StepsPerEpoch ? $"after the last step of epoch {ex.Epoch + 1}, before its evaluation" : $"at epoch {ex.Epoch + 1}, step {ex.Step}";
            return Fail(Sample.Failed, $"{what} Training stopped {at}; {kept}.");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            var kept = File.Exists(folder.LastCheckpoint) ? $"'{folder.LastCheckpoint}' holds the last epoch saved (continue with --resume {folder.Path})" : "no epoch had finished, so there is no checkpoint";
            return Fail(Sample.CannotWrite, $"{ex.Message} Training stopped; {kept}.");
        }

        if (result.Cancelled)
        {
            console.MarkupLineInterpolated($"Stopped at epoch {trainer.NextEpoch + 1}, step {trainer.NextStep}; checkpoint saved. Continue with --resume {folder.Path}.");
            return stop.ExitCode;
        }

        console.MarkupLineInterpolated(
            $"Done: final backbone top-1 {result.FinalTop1:F2}%, best over epochs {config.ResolvedBestAfter + 1}-{config.Epochs} {(result.BestTop1 is { } b ? $"{b:F2}% (epoch {result.BestEpoch + 1})" : "-")}. Report: '{Path.Combine(folder.Path, "report.md")}'.");
        return Sample.Ok;
    }
}
