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
internal sealed class EpochLoop(Trainer owner, Trainer.Parts parts, IBatchReader reader, TrainerOptions options, ILogger logger)
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
            if (Stopping(cancellationToken))
            {
                // With several ranks the checkpoint's interrupted-epoch sums are every rank's.
                parts.Record.Combine(parts.Step.Group);
                parts.Record.Pause(parts.Record.EarlierSeconds + clock.Elapsed.TotalSeconds);
                parts.State.StopAt(epoch, step);
                owner.WriteCheckpoint("last.ckpt");
                return null;
            }

            if (!batches.MoveNext())
            {
                throw new InvalidOperationException($"The training set's reader ended at step {step} of {steps} in epoch {epoch}.");
            }

            using (var batch = batches.Current)
            {
                parts.Schedule.BeforeStep(epoch, step, steps);
                parts.Step.Run(batch, epoch, (output, result) => Observe(batch, epoch, steps, lr, output, result));
            }

            parts.Schedule.AfterStep();
            var done = step + 1;
            if (done % options.LogInterval == 0 && done < steps)
            {
                parts.Record.CheckFinite(epoch);
                var running = parts.Record.Running(epoch, done, steps, parts.Record.EarlierSeconds + clock.Elapsed.TotalSeconds);
                owner.Notify(c => c.OnProgress(owner, running));
            }
        }

        return steps;
    }

    /// <summary>Whether to stop before this step: asked of this rank, or with several ranks, of any (all stop at the same step).</summary>
    private bool Stopping(CancellationToken cancellationToken)
    {
        var mine = cancellationToken.IsCancellationRequested;
        var group = parts.Step.Group;
        return group.WorldSize == 1 ? mine : group.AllGather(mine ? 1 : 0).Max() > 0;
    }

    private void Observe(ImageBatch batch, int epoch, int steps, double lr, MultiBranchOutput output, MultiBranchLossResult result)
    {
        parts.Record.Add(result, output.Backbone, batch.Labels, batch.Step, guardNonFinite: parts.Step.Precision.GuardsNonFiniteLoss);
        if (owner.Callbacks.Count > 0)
        {
            var done = new TrainingStep(epoch, batch.Step, steps, lr, output, result, batch.Labels, batch.Indices);
            owner.Notify(c => c.OnStepEnd(owner, done));
        }
    }

    private void EndEpoch(int epoch, int steps, double lr, double seconds)
    {
        parts.Record.Combine(parts.Step.Group);
        parts.Record.CheckFinite(epoch);
        var end = parts.Record.Running(epoch, steps, steps, seconds);
        parts.Schedule.AfterEpoch();
        var (metrics, improved) = parts.Record.Complete(epoch, lr, seconds, owner.EvaluateTest);
        parts.State.Completed(epoch);
        owner.WriteCheckpoint("last.ckpt");
        if (improved)
        {
            owner.WriteCheckpoint("best.ckpt");
        }

        var completed = new TrainingProgress(end.Epoch, end.TotalEpochs, end.Step, end.StepsPerEpoch, end.RunningLoss, end.RunningTop1, end.ImagesPerSecond, metrics);
        owner.Notify(c => c.OnProgress(owner, completed));
        owner.Notify(c => c.OnEpochEnd(owner, metrics));
        TrainerLog.Epoch(logger, epoch + 1, metrics.TrainLoss, metrics.TrainTop1, metrics.BackboneTop1, metrics.TestTop5, metrics.ImagesPerSecond, null);
    }
}
