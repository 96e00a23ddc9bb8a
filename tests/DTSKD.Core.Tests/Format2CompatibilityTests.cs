using System.Text.Json;
using DTSKD.Core.Data;
using DTSKD.Core.Training;

namespace DTSKD.Core.Tests;

/// <summary>Checkpoints written by the DTSKD.Core before streaming sections (format 2, TestData/format2) still read.</summary>
public sealed class Format2CompatibilityTests
{
    private static readonly string Folder = Path.Combine(AppContext.BaseDirectory, "TestData", "format2");

    private sealed record Figures(int Epoch, double TrainLoss, double TrainTop1, double[] TestTop1, double TestTop5, double TestLoss);

    private static List<Figures> Expected(string name) =>
        JsonSerializer.Deserialize<List<Figures>>(File.ReadAllText(Path.Combine(Folder, $"{name}-metrics.json")))!;

    [Fact]
    public void A_format_2_float32_checkpoint_resumes_into_the_run_the_old_version_trained()
    {
        var previous = get_num_threads();
        set_num_threads(1);
        try
        {
            using var train = Format2Fixture.Halves(96, 1);
            using var test = Format2Fixture.Halves(32, 2);
            manual_seed(77);
            using var model = Format2Fixture.Model();
            using var loss = DualTeacherLoss.For(model, train.Count, new DualTeacherLossOptions { ScaleKdByTemperatureSquared = false });
            using var trainer = new Trainer(model, loss, train, test, new PadCropFlip([0.4], [0.3], padding: 1), Format2Fixture.Options(TrainingPrecision.Float32, null));

            trainer.LoadCheckpoint(Path.Combine(Folder, "fp32-epoch1.ckpt"));
            var result = trainer.Run();

            // The fixture was trained on an AMD EPYC (AVX-512); LibTorch's float32 kernels round differently on other CPU
            // families (an Intel Xeon with AMX gives losses 2e-8 to 7e-7 apart, relatively), so losses are compared to 1e-5 of
            // their value: far below what a resume that loses any part of the state (momentum, history, position) changes.
            var expected = Expected("fp32");
            result.Metrics.Select(m => m.Epoch).Should().Equal(expected.Select(e => e.Epoch));
            foreach (var (m, e) in result.Metrics.Zip(expected))
            {
                m.TrainLoss.Should().BeApproximately(e.TrainLoss, 1e-5 * e.TrainLoss, $"epoch {e.Epoch + 1}'s training loss of the old version's uninterrupted run");
                m.TestLoss.Should().BeApproximately(e.TestLoss, 1e-5 * e.TestLoss, $"epoch {e.Epoch + 1}'s test loss");
                (m.TrainTop1, m.TestTop5).Should().Be((e.TrainTop1, e.TestTop5), $"epoch {e.Epoch + 1}'s accuracies");
                m.TestTop1.Should().Equal(e.TestTop1, $"epoch {e.Epoch + 1}'s per-head test top-1");
            }
        }
        finally
        {
            set_num_threads(previous);
        }
    }

    [Fact]
    public void A_format_2_bfloat16_checkpoint_evaluates_to_its_figures_and_refuses_to_resume_clearly()
    {
        var path = Path.Combine(Folder, "bf16-epoch1.ckpt");
        using var test = Format2Fixture.Halves(32, 2);
        using var model = Format2Fixture.Model();

        var summary = TrainerCheckpoint.LoadModel(path, model);

        summary.Precision.Should().Be(TrainingPrecision.BFloat16);
        var evaluation = Evaluator.Evaluate(model, test, new PadCropFlip([0.4], [0.3], padding: 1), precision: TrainingPrecision.BFloat16, batchSize: 32);
        evaluation.Top1.Should().Equal(Expected("bf16")[0].TestTop1, "its bfloat16 weights, evaluated as the old version evaluated them");

        using var train = Format2Fixture.Halves(96, 1);
        using var loss = DualTeacherLoss.For(model, train.Count, new DualTeacherLossOptions { ScaleKdByTemperatureSquared = false });
        using var trainer = new Trainer(model, loss, train, test, new PadCropFlip([0.4], [0.3], padding: 1), Format2Fixture.Options(TrainingPrecision.BFloat16, null));
        ((Action)(() => trainer.LoadCheckpoint(path))).Should().Throw<InvalidDataException>()
            .WithMessage("*was written in BFloat16 by an earlier DTSKD.Core (checkpoint format 2)*cannot continue*weights still load for evaluation and export*");
    }
}
