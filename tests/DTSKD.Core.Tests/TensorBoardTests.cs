using DTSKD.Core.Training;

namespace DTSKD.Core.Tests;

public sealed class TensorBoardTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-tensorboard-");

    public void Dispose() => _dir.Delete(recursive: true);

    /// <summary>Every (tag, step, value) in TensorBoard event files: TFRecord framing around protobuf Event messages.</summary>
    internal static List<(string Tag, long Step, float Value)> ReadScalars(string directory)
    {
        var scalars = new List<(string, long, float)>();
        foreach (var file in Directory.GetFiles(directory, "events.out.tfevents.*"))
        {
            using var reader = new BinaryReader(File.OpenRead(file));
            while (reader.BaseStream.Position < reader.BaseStream.Length)
            {
                var length = reader.ReadInt64();
                reader.ReadUInt32();
                var data = reader.ReadBytes(checked((int)length));
                reader.ReadUInt32();
                var e = Tensorboard.Event.Parser.ParseFrom(data);
                if (e.Summary is { } summary)
                {
                    scalars.AddRange(summary.Value.Select(v => (v.Tag, e.Step, v.SimpleValue)));
                }
            }
        }

        return scalars;
    }

    [Fact]
    public void A_run_writes_every_figure_under_its_tag()
    {
        using var train = TrainerTests.Halves(64, 71);
        using var test = TrainerTests.Halves(32, 72);
        manual_seed(1);
        using var model = Models.ResNetDtskd.ResNet18(TrainerTests.TinyModel);
        using var loss = DualTeacherLoss.For(model, train.Count);
        var logs = Path.Combine(_dir.FullName, "tb");
        using var trainer = new Trainer(model, loss, train, test, new Data.PadCropFlip([0.4], [0.3]), new TrainerOptions
        {
            Epochs = 2, BatchSize = 16, LogInterval = 2, Milestones = [],
        });
        var callback = new TensorBoardCallback(logs);
        trainer.Callbacks.Add(callback);
        Directory.Exists(logs).Should().BeFalse("nothing is written before the run starts");

        var result = trainer.Run();

        var scalars = ReadScalars(logs);
        var tags = scalars.Select(s => s.Tag).ToHashSet();
        tags.Should().Contain([
            "train/loss", "train/top1", "train/history/backbone", "train/structural/branch3", "objective/alpha", "test/top1/backbone",
            "test/top1/branch3", "test/top5", "test/loss", "lr", "speed/images_per_second", "running/loss", "running/top1",
        ]);
        scalars.Where(s => s.Tag == "test/top1/backbone").Select(s => (s.Step, s.Value))
            .Should().Equal(result.Metrics.Select(m => ((long)m.Epoch + 1, (float)m.BackboneTop1)));
        scalars.Where(s => s.Tag == "objective/alpha").Select(s => s.Value).Should().Equal(result.Metrics.Select(m => (float)m.Scalars["alpha"]));
        scalars.Where(s => s.Tag == "running/loss").Select(s => s.Step).Should().Contain([2L, 6L], "steps 2 of epoch 1 and 2 of epoch 2 (4 steps an epoch)");
    }
}
