using System.Diagnostics;
using DTSKD.Core.Data;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// The loop over epochs and steps: reads each step's batch in the epoch's order, runs the step, reports progress, checks
/// the loss at log intervals, and at each epoch's end steps the schedule, evaluates, records and checkpoints. Stops at a
/// step boundary when asked, after writing <c>last.ckpt</c>.
/// </summary>
internal sealed class EpochLoop(EpochHooks hooks, Trainer.Parts parts, IBatchReader reader, TrainerOptions options, ILogger logger)
{
    /// <summary>Trains from where the run stands to its last epoch, or until <paramref name="cancellationToken"/> fires.</summary>
    public TrainingResult Run(CancellationToken cancellationToken)
    {
        for (var epoch = parts.State.NextEpoch; epoch < options.Epochs; epoch++)
        {
            var lr = parts.Schedule.Rate;
            parts.Step.TrainMode();
            var clock = Stopwatch.StartNew();
            var steps = TrainSteps(epoch, lr, clock, cancellationToken);
            if (steps is null)
            {
                return parts.Record.Result(cancelled: true);
            }

            EndEpoch(epoch, steps.Value, lr, parts.Record.EarlierSeconds + clock.Elapsed.TotalSeconds);
        }

        return parts.Record.Result(cancelled: false);
    }

    /// <summary>The epoch's steps from where it stands; null when cancelled (the stop is checkpointed), else the step count.</summary>
    private int? TrainSteps(int epoch, double lr, Stopwatch clock, CancellationToken cancellationToken)
    {
        using var order = parts.Order.For(epoch);
        var steps = parts.Order.StepsFor((int)order.shape[0]);
        var first = parts.State.NextStep;

        // Not the run's token: the run stops at a step boundary, checked below, and a reader that is stopped instead would
        // throw out of the step it is reading.
        using var batches = reader.Read(order, options.BatchSize, first, CancellationToken.None).GetEnumerator();
        for (var step = first; step < steps; step++)
        {
            // The batch is read before the ranks agree to go on: a read that fails (a file deleted or corrupted under a
            // streaming run) stops every rank at this step boundary, checkpointed, as a cancel does.
            var (batch, fault) = Next(batches, epoch, step, steps);
            var stop = Stopping(fault is not null, cancellationToken);
            if (stop.Stop)
            {
                batch?.Dispose();

                // With several ranks the checkpoint's interrupted-epoch sums are every rank's.
                parts.Record.Combine(parts.Step.Group);
                parts.Record.Pause(parts.Record.EarlierSeconds + clock.Elapsed.TotalSeconds);
                parts.State.StopAt(epoch, step);
                var checkpoint = hooks.Checkpoint("last.ckpt");
                if (stop.Faulted.Count > 0)
                {
                    throw Fault(fault, stop.Faulted, epoch, step, checkpoint);
                }

                return null;
            }

            using (batch)
            {
                parts.Schedule.BeforeStep(epoch, step, steps);
                parts.Step.Run(batch!, epoch, (output, result) => Observe(batch!, epoch, steps, lr, output, result));
            }

            parts.Schedule.AfterStep();
            var done = step + 1;
            if (done % options.LogInterval == 0 && done < steps)
            {
                parts.Record.CheckFinite(epoch);
                var running = parts.Record.Running(epoch, done, steps, parts.Record.EarlierSeconds + clock.Elapsed.TotalSeconds);
                hooks.Notify((c, trainer) => c.OnProgress(trainer, running));
            }
        }

        return steps;
    }

    /// <summary>The step's batch, or the data fault that kept the reader from producing it.</summary>
    private static (ImageBatch? Batch, Exception? Fault) Next(IEnumerator<ImageBatch> batches, int epoch, int step, int steps)
    {
        bool more;
        try
        {
            more = batches.MoveNext();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (null, ex);
        }

        return more ? (batches.Current, null) : throw new InvalidOperationException($"The training set's reader ended at step {step} of {steps} in epoch {epoch}.");
    }

    /// <summary>
    /// Whether to stop before this step: asked of this rank, or with several ranks, of any (all stop at the same step);
    /// and the ranks whose batch could not be read.
    /// </summary>
    private (bool Stop, IReadOnlyList<int> Faulted) Stopping(bool faulted, CancellationToken cancellationToken)
    {
        var mine = faulted ? 2 : cancellationToken.IsCancellationRequested ? 1 : 0;
        var group = parts.Step.Group;
        double[] all = group.WorldSize == 1 ? [mine] : group.AllGather(mine);
        return (all.Max() > 0, [.. Enumerable.Range(0, all.Length).Where(r => all[r] == 2)]);
    }

    private TrainingDataException Fault(Exception? mine, IReadOnlyList<int> faulted, int epoch, int step, string? checkpoint)
    {
        var kept = checkpoint is null ? "no checkpoint folder is set, so nothing was saved" : $"'{checkpoint}' holds every step before it";
        var group = parts.Step.Group;
        var what = mine is not null
            ? $"{(group.WorldSize > 1 ? $"Rank {group.Rank} could not read its" : "Could not read the")} training batch: {mine.Message}"
            : $"Rank {string.Join(", ", faulted)} could not read its training batch (its own error names the file)";
        return new TrainingDataException($"{what}; training stopped at epoch {epoch} (0-based), step {step}, and {kept}.", epoch, step, checkpoint, mine);
    }

    private void Observe(ImageBatch batch, int epoch, int steps, double lr, MultiBranchOutput output, MultiBranchLossResult result)
    {
        parts.Record.Add(result, output.Backbone, batch.Labels, batch.Step, guardNonFinite: parts.Step.Precision.GuardsNonFiniteLoss);
        if (hooks.Listening())
        {
            var done = new TrainingStep(epoch, batch.Step, steps, lr, output, result, batch.Labels, batch.Indices);
            hooks.Notify((c, trainer) => c.OnStepEnd(trainer, done));
        }
    }

    private void EndEpoch(int epoch, int steps, double lr, double seconds)
    {
        parts.Record.Combine(parts.Step.Group);
        parts.Record.CheckFinite(epoch);
        var end = parts.Record.Running(epoch, steps, steps, seconds);
        EpochMetrics metrics;
        bool improved;
        try
        {
            (metrics, improved) = parts.Record.Complete(epoch, lr, seconds, hooks.Evaluate);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException && parts.Step.Group.WorldSize == 1)
        {
            // The test set broke under a streaming run: the epoch's steps are kept, and a resume evaluates it. (With
            // several ranks the evaluation is collective, and the others stop at its deadline instead.)
            parts.Record.Pause(seconds);
            parts.State.StopAt(epoch, steps);
            var checkpoint = hooks.Checkpoint("last.ckpt");
            var kept = checkpoint is null ? "no checkpoint folder is set, so nothing was saved" : $"'{checkpoint}' holds every step of it";
            throw new TrainingDataException(
                $"Could not read the test set: {ex.Message}; training stopped after the last step of epoch {epoch} (0-based), before its evaluation, and {kept}.", epoch, steps, checkpoint, ex);
        }

        // After the evaluation, so that a checkpoint written when it fails holds the schedule as the steps left it.
        parts.Schedule.AfterEpoch();
        parts.State.Completed(epoch);
        hooks.Checkpoint("last.ckpt");
        if (improved)
        {
            hooks.Checkpoint("best.ckpt");
        }

        var completed = new TrainingProgress(end.Epoch, end.TotalEpochs, end.Step, end.StepsPerEpoch, end.RunningLoss, end.RunningTop1, end.ImagesPerSecond, metrics);
        hooks.Notify((c, trainer) => c.OnProgress(trainer, completed));
        hooks.Notify((c, trainer) => c.OnEpochEnd(trainer, metrics));
        TrainerLog.Epoch(logger, epoch + 1, metrics.TrainLoss, metrics.TrainTop1, metrics.BackboneTop1, metrics.TestTop5, metrics.ImagesPerSecond, null);
    }
}

/// <summary>
/// What the loop asks of the trainer that runs it: a checkpoint written into the run folder (its path, or null when there
/// is no folder), the test set evaluated, the callbacks told (each with the trainer), and whether any listen to steps.
/// </summary>
internal sealed record EpochHooks(Func<string, string?> Checkpoint, Func<EvaluationResult> Evaluate, Action<Action<TrainerCallback, Trainer>> Notify, Func<bool> Listening);
