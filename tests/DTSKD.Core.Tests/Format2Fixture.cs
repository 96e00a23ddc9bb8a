using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace DTSKD.Core.Tests;

/// <summary>
/// The run behind the format-2 checkpoints in TestData/format2: compiled here and, by eng/make-format2-checkpoints.sh,
/// against the last DTSKD.Core that wrote format 2, so it only uses API both have.
/// </summary>
public static class Format2Fixture
{
    /// <summary>Two separable classes of 8x8 images (as TrainerTests.Halves).</summary>
    public static ImageDataset Halves(int count, int seed)
    {
        var generator = new TorchSharp.torch.Generator((ulong)seed);
        using var scope = NewDisposeScope();
        var labels = arange(count, dtype: ScalarType.Int64).remainder(2);
        var rows = arange(8, dtype: ScalarType.Int64).view(1, 1, 8, 1);
        var top = rows.lt(4).expand(count, 1, 8, 8);
        var bright = where(labels.view(-1, 1, 1, 1).eq(0), top, top.logical_not());
        var noise = randint(0, 60, [count, 1, 8, 8], dtype: ScalarType.Int64, generator: generator);
        var images = bright.to(ScalarType.Int64).mul(150).add(noise).to(ScalarType.Byte);
        return ImageDataset.FromTensors(images, labels, 2, name: $"halves{seed}");
    }

    /// <summary>A small user backbone (two 16-channel stages) made multi-branch: a checkpoint of some 100 KB.</summary>
    public static MultiBranchNetwork Model() => new(new TinyBackbone(), stageChannels: [16], featureChannels: 16, classCount: 2, neckWidth: 16);

    /// <summary>Three epochs of the recipe's SGD at lr 0.05 in batches of 16.</summary>
    public static TrainerOptions Options(TrainingPrecision precision, string? checkpoints) => new()
    {
        Epochs = 3, BatchSize = 16, EvalBatchSize = 32, LearningRate = 0.05, Milestones = [2], BestAfterEpoch = 1, LogInterval = 2, Seed = 9,
        Precision = precision, CheckpointDirectory = checkpoints,
    };

    private sealed class TinyBackbone : Module<Tensor, BackboneFeatures>
    {
        private readonly Sequential stem = Sequential(Conv2d(1, 16, 3, padding: 1, bias: false), BatchNorm2d(16), ReLU());
        private readonly Sequential stage = Sequential(Conv2d(16, 16, 3, stride: 2, padding: 1, bias: false), BatchNorm2d(16), ReLU());

        public TinyBackbone() : base(nameof(TinyBackbone)) => RegisterComponents();

        public override BackboneFeatures forward(Tensor input)
        {
            var a = stem.call(input);
            var b = stage.call(a);
            return new BackboneFeatures([a], nn.functional.adaptive_avg_pool2d(b, 1));
        }
    }
}
