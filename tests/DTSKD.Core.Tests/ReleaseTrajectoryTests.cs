using System.Text.Json;
using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;

namespace DTSKD.Core.Tests;

/// <summary>
/// The release's own training, step for step: <c>TestData/golden/release-trajectory.json</c> was written by
/// <c>eng/release-reference.py trajectory</c>, which trains the release's resnet18_dtskd with the release's KL_Loss and
/// KL_Loss2 in float64 (history written every step, as the paper says). The same run replayed through the Trainer's own
/// step must give every step's loss and terms, and the final logits of every head, to 1e-6 relative (measured here:
/// about 3e-10 for the totals, 6e-9 for the terms, 2e-10 for the logits).
/// </summary>
public class ReleaseTrajectoryTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const double Tolerance = 1e-6;

    [Fact]
    public void Training_replays_the_release_step_for_step_in_float64()
    {
        var golden = Golden.Load();
        var (steps, logits) = Replay(golden, new DualTeacherLossOptions());

        steps.Should().HaveCount(golden.Steps.Count);
        var worstStep = steps.Zip(golden.Steps).Max(p => Relative(p.First.Total, p.Second.Total));
        var worstComponent = steps.Zip(golden.Steps).Max(p => p.Second.Components.Max(c => Relative(p.First.Components[c.Key], c.Value)));
        var worstLogit = Enumerable.Range(0, 4).Max(h => logits[h].Zip(golden.TestLogits[h]).Max(r => r.First.Zip(r.Second).Max(p => Math.Abs(p.First - p.Second)) / r.Second.Max(Math.Abs)));
        output.WriteLine(FormattableString.Invariant($"worst relative difference: step totals {worstStep:E2}, terms {worstComponent:E2}, test logits {worstLogit:E2}"));
        for (var i = 0; i < steps.Count; i++)
        {
            var (expected, actual) = (golden.Steps[i], steps[i]);
            var where = $"epoch {expected.Epoch}, step {expected.Step}";
            actual.LearningRate.Should().Be(expected.Lr, where);
            actual.Alpha.Should().Be(expected.Alpha, where);
            Relative(actual.Total, expected.Total).Should().BeLessThan(Tolerance, $"the total loss at {where}: {actual.Total:R} vs the release's {expected.Total:R}");
            foreach (var (name, value) in expected.Components)
            {
                Relative(actual.Components[name], value).Should().BeLessThan(Tolerance, $"{name} at {where}");
            }
        }

        for (var h = 0; h < 4; h++)
        {
            for (var row = 0; row < logits[h].Length; row++)
            {
                // Relative to the row's largest logit: an element-wise ratio would divide by logits that happen to be near 0.
                var scale = golden.TestLogits[h][row].Max(Math.Abs);
                var worst = logits[h][row].Zip(golden.TestLogits[h][row]).Max(p => Math.Abs(p.First - p.Second)) / scale;
                worst.Should().BeLessThan(Tolerance, $"head {h}'s eval-mode logits of test image {row}");
            }
        }
    }

    /// <summary>Replays the golden run through the Trainer: per-step losses and the final eval-mode logits of every head.</summary>
    internal static (List<StepRecord> Steps, double[][][] Logits) Replay(Golden golden, DualTeacherLossOptions options, double? weightDecay = null, bool nesterov = true)
    {
        using var images = tensor(golden.TrainImages, [golden.TrainLabels.Length, .. golden.ImageShape], ScalarType.Byte);
        using var labels = tensor(golden.TrainLabels);
        using var train = ImageDataset.FromTensors(images, labels, golden.Classes, "golden-train");
        using var testImages = tensor(golden.TestImages, [golden.TestImages.Length / 3072, .. golden.ImageShape], ScalarType.Byte);
        using var testLabels = zeros([testImages.shape[0]], ScalarType.Int64);
        using var test = ImageDataset.FromTensors(testImages, testLabels, golden.Classes, "golden-test");
        var identity = new PadCropFlip([0, 0, 0], [1, 1, 1], padding: 0, horizontalFlip: false);

        using var model = MultiBranchModels.resnet18_dtskd(numClasses: golden.Classes);
        model.to(ScalarType.Float64);
        ReferenceWeights.Apply(model);
        using var loss = DualTeacherLoss.For(model, train.Count, options);
        var steps = new List<StepRecord>();
        using (var trainer = new Trainer(model, loss, train, test, identity, new TrainerOptions
               {
                   Epochs = golden.Epochs, BatchSize = golden.Batch, LearningRate = golden.Lr, Momentum = golden.Momentum, Nesterov = nesterov,
                   WeightDecay = weightDecay ?? golden.WeightDecay, Milestones = golden.Milestones, Gamma = golden.Gamma,
                   Precision = TrainingPrecision.Float64, EpochOrder = e => tensor(golden.Orders[e]), LogInterval = 1000,
               }))
        {
            trainer.Callbacks.Add(new TestCallback
            {
                StepEnd = s => steps.Add(new StepRecord(
                    s.LearningRate,
                    s.Loss.Scalars.GetValueOrDefault("alpha"),
                    s.Loss.Total.item<double>(),
                    s.Loss.Components.ToDictionary(c => c.Key, c => c.Value.item<double>()))),
            });
            trainer.Run();
        }

        model.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var output = model.call(identity.Prepare(testImages).to(ScalarType.Float64));
        return (steps, [.. output.Heads.Select(TestTensors.ToArrays)]);
    }

    internal static double Relative(double actual, double expected) => Math.Abs(actual - expected) / Math.Abs(expected);

    internal sealed record StepRecord(double LearningRate, double Alpha, double Total, Dictionary<string, double> Components);

    internal sealed record GoldenStep(int Epoch, int Step, double Lr, double Alpha, double Total, Dictionary<string, double> Components);

    internal sealed record Golden(
        int Classes, int Batch, int Epochs, double Lr, double Momentum, double WeightDecay, int[] Milestones, double Gamma,
        byte[] TrainImages, long[] TrainLabels, byte[] TestImages, long[] ImageShape, long[][] Orders, List<GoldenStep> Steps, double[][][] TestLogits)
    {
        private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

        public static Golden Load() =>
            JsonSerializer.Deserialize<Golden>(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "TestData", "golden", "release-trajectory.json")), Json)!;
    }
}
