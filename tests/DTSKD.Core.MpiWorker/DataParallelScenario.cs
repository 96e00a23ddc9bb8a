using DTSKD.Core;
using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using static TorchSharp.torch;

namespace DTSKD.Core.MpiWorker;

/// <summary>
/// One small float64 DTSKD run that the data-parallel tests train three ways: two MPI ranks, two in-process thread ranks,
/// and one process accumulating the ranks' two micro-batches (the reference). Shared source, so all three see the same
/// data, weights and options.
/// </summary>
internal static class DataParallelScenario
{
    /// <summary>Training samples: 12 per rank, three steps of <see cref="Batch"/> per epoch.</summary>
    public const int Samples = 24;

    /// <summary>Per rank and step.</summary>
    public const int Batch = 4;

    /// <summary>Two epochs, so the historical teacher reads rows it wrote in the first.</summary>
    public const int Epochs = 2;

    public static (ImageDataset Train, ImageDataset Test) Data()
    {
        manual_seed(11);
        using var images = randint(0, 256, [Samples, 1, 8, 8], ScalarType.Byte);
        using var labels = randint(0, 2, [Samples], ScalarType.Int64);
        var train = ImageDataset.FromTensors(images, labels, 2, "parallel-train");
        return (train, train.Take(8));
    }

    public static IMultiBranchModel Model()
    {
        manual_seed(3);
        return MultiBranchModels.Create("resnet18_dtskd", new MultiBranchModelOptions { ClassCount = 2, InputChannels = 1, BaseWidth = 16, NeckWidth = 16 });
    }

    /// <summary>No random crop or flip: the reference draws no augmentation, so the comparison is of the training alone.</summary>
    public static PadCropFlip Augmentation => new([0.4], [0.3], padding: 0, horizontalFlip: false);

    public static DualTeacherLoss Loss(IMultiBranchModel model) => DualTeacherLoss.For(model, Samples);

    public static TrainerOptions Options(IProcessGroup? group, bool syncBatchNorm = false) => new()
    {
        SyncBatchNorm = syncBatchNorm,
        Epochs = Epochs,
        BatchSize = Batch,
        Precision = TrainingPrecision.Float64,
        Milestones = [],
        Seed = 5,
        LogInterval = 1000,
        ProcessGroup = group,
    };

    /// <summary>Every parameter's values, in the model's order.</summary>
    public static double[] Weights(IMultiBranchModel model) =>
        [.. model.named_parameters().SelectMany(p => { using var d = p.parameter.detach().to(ScalarType.Float64).cpu(); return d.data<double>().ToArray(); })];

    /// <summary>Asks its run to stop once a given step of a given epoch has ended (one rank's Ctrl+C).</summary>
    internal sealed class StopAfter(int epoch, int step, CancellationTokenSource stop) : TrainerCallback
    {
        public override void OnStepEnd(Trainer trainer, TrainingStep done)
        {
            if (done.Epoch == epoch && done.Step == step)
            {
                stop.Cancel();
            }
        }
    }

    /// <summary>One rank's data, model and loss, built in the scenario's order, with the trainer over them; owns them all.</summary>
    internal sealed class Replica : IDisposable
    {
        /// <summary>Builds the replica; with <paramref name="shardOf"/>, its history holds that rank's shard only.</summary>
        public Replica(IProcessGroup? shardOf = null)
        {
            (Train, Test) = Data();
            Model = DataParallelScenario.Model();
            Loss = shardOf is null ? DataParallelScenario.Loss(Model) : DualTeacherLoss.For(Model, DataParallel.ShardSize(Samples, shardOf));
        }

        public ImageDataset Train { get; }

        public ImageDataset Test { get; }

        public IMultiBranchModel Model { get; }

        public DualTeacherLoss Loss { get; }

        /// <summary>
        /// A trainer of this replica for <paramref name="group"/> (null: one process), checkpointing into <paramref name="checkpoints"/>
        /// when given, reading <paramref name="train"/> instead of the replica's training set when given.
        /// </summary>
        public Trainer Trainer(IProcessGroup? group, string? checkpoints = null, bool syncBatchNorm = false, IImageSource? train = null)
        {
            var options = Options(group, syncBatchNorm);
            options.CheckpointDirectory = checkpoints;
            return new Trainer(Model, Loss, train ?? Train, Test, Augmentation, options);
        }

        public void Dispose()
        {
            Loss.Dispose();
            Model.Dispose();
            Test.Dispose();
            Train.Dispose();
        }
    }
}
