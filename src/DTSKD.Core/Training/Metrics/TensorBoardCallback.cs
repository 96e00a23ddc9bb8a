using System.Globalization;
using TorchSharp;

namespace DTSKD.Core.Training;

/// <summary>
/// Writes a run's figures as TensorBoard event files (TorchSharp's <c>SummaryWriter</c>), so a run can be followed with
/// <c>tensorboard --logdir</c>: every epoch's training loss, each named loss term and the objective's scalars, the
/// training and test top-1 of every head, the backbone's top-5 and test loss, the learning rate and the throughput; and
/// at every progress report the running loss and top-1.
/// </summary>
/// <remarks>
/// Tags: <c>train/loss</c>, <c>train/top1</c>, <c>train/&lt;term&gt;</c> (for example <c>train/history/backbone</c>),
/// <c>objective/&lt;scalar&gt;</c> (for example <c>objective/alpha</c>), <c>test/top1/backbone</c>,
/// <c>test/top1/branch&lt;k&gt;</c>, <c>test/top5</c>, <c>test/loss</c>, <c>lr</c>, <c>speed/images_per_second</c> at step =
/// 1-based epoch; <c>running/loss</c> and <c>running/top1</c> at step = training steps so far. Nothing is written before the
/// run starts; a resumed run adds a new event file beside the old ones, which TensorBoard reads as one run.
/// </remarks>
/// <param name="logDirectory">Where the event files go (created when the run starts).</param>
public sealed class TensorBoardCallback(string logDirectory) : TrainerCallback
{
    private TorchSharp.Modules.SummaryWriter? _writer;

    /// <summary>Where the event files go.</summary>
    public string LogDirectory { get; } = logDirectory ?? throw new ArgumentNullException(nameof(logDirectory));

    /// <inheritdoc />
    public override void OnTrainStart(Trainer trainer) => _writer ??= torch.utils.tensorboard.SummaryWriter(LogDirectory);

    /// <inheritdoc />
    public override void OnProgress(Trainer trainer, TrainingProgress progress)
    {
        ArgumentNullException.ThrowIfNull(progress);
        if (progress.Completed is null && _writer is { } writer)
        {
            var step = (progress.Epoch * progress.StepsPerEpoch) + progress.Step;
            writer.add_scalar("running/loss", (float)progress.RunningLoss, step);
            writer.add_scalar("running/top1", (float)progress.RunningTop1, step);
        }
    }

    /// <inheritdoc />
    public override void OnEpochEnd(Trainer trainer, EpochMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        if (_writer is not { } writer)
        {
            return;
        }

        var step = metrics.Epoch + 1;
        void Add(string tag, double value) => writer.add_scalar(tag, (float)value, step);
        Add("train/loss", metrics.TrainLoss);
        Add("train/top1", metrics.TrainTop1);
        foreach (var (name, value) in metrics.TrainComponents)
        {
            Add($"train/{name}", value);
        }

        foreach (var (name, value) in metrics.Scalars)
        {
            Add($"objective/{name}", value);
        }

        for (var h = 0; h < metrics.TestTop1.Count; h++)
        {
            Add(h == 0 ? "test/top1/backbone" : string.Create(CultureInfo.InvariantCulture, $"test/top1/branch{h}"), metrics.TestTop1[h]);
        }

        Add("test/top5", metrics.TestTop5);
        Add("test/loss", metrics.TestLoss);
        Add("lr", metrics.LearningRate);
        Add("speed/images_per_second", metrics.ImagesPerSecond);
    }
}
