using System.Text.Json;
using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;

namespace DTSKD.Core.Tests;

/// <summary>
/// The release's five networks against the release itself: <c>TestData/golden/release-logits.json</c> was written by
/// <c>eng/release-reference.py logits</c> from the release's own model classes, with formula weights and BatchNorm
/// statistics that both sides compute (<see cref="ReferenceWeights"/>).
/// </summary>
public class ReleaseNetworksTests
{
    private static readonly Lazy<JsonElement> Golden = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "TestData", "golden", "release-logits.json"))).RootElement);

    public static TheoryData<string> Networks => new() { "resnet18_dtskd", "resnet34_dtskd", "vgg16_dtskd", "resnext18_dtskd", "shufflev2_dtskd" };

    [Theory]
    [MemberData(nameof(Networks))]
    public void Eval_mode_logits_of_every_head_match_the_release_for_the_same_weights(string name)
    {
        var golden = Golden.Value.GetProperty("networks").GetProperty(name);
        using var model = MultiBranchModels.Create(name);
        ReferenceWeights.ApplyWithStatistics(model);
        model.eval();
        model.parameters().Sum(p => p.numel()).Should().Be(golden.GetProperty("parameters").GetInt64());

        var bytes = Convert.FromBase64String(Golden.Value.GetProperty("images").GetString()!);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var images = tensor(bytes, [bytes.Length / 3072, 3, 32, 32], ScalarType.Byte);
        using var output = model.call(new PadCropFlip([0, 0, 0], [1, 1, 1], padding: 0, horizontalFlip: false).Prepare(images));

        var expected = golden.GetProperty("logits");
        for (var h = 0; h < 4; h++)
        {
            var actual = TestTensors.ToArrays(output.Heads[h]);
            for (var row = 0; row < actual.Length; row++)
            {
                var reference = expected[h][row].EnumerateArray().Select(v => v.GetDouble()).ToArray();

                // Relative to the row's largest logit: an element-wise ratio would divide by logits that happen to be near 0.
                var worst = actual[row].Zip(reference).Max(p => Math.Abs(p.First - p.Second)) / reference.Max(Math.Abs);
                worst.Should().BeLessThan(1e-4, $"{name}, head {h}, image {row}");
            }
        }
    }

    // Cross-entropy on all four heads: this checks that every new network and its necks learn, not that DTSKD helps
    // (docs/results.md studies that). 2,048 images and 3 epochs is where VGG16, the slowest starter, clears chance
    // clearly (measured 37.9% backbone top-1 with this seed; ResNeXt18 64.3%, ShuffleNetV2 60.5%).
    [Theory]
    [InlineData("vgg16_dtskd")]
    [InlineData("resnext18_dtskd")]
    [InlineData("shufflev2_dtskd")]
    public async Task A_short_fashion_mnist_run_trains_every_head_of_each_new_network(string name)
    {
        using var data = await StandardDatasets.LoadAsync(StandardDatasets.FashionMnist, trainLimit: 2048, testLimit: 512);
        manual_seed(1);
        using var model = MultiBranchModels.Create(name, new MultiBranchModelOptions { ClassCount = 10, InputChannels = 1, BaseWidth = 16, NeckWidth = 32 });
        using var trainer = new Trainer(model, CrossEntropyObjective.AllHeads(model), data.Train, data.Test, data.Preprocessing, new TrainerOptions
        {
            Epochs = 3, BatchSize = 64, LearningRate = 0.05, Milestones = [], Seed = 2, LogInterval = 1000,
        });

        var result = trainer.Run();

        result.Metrics[^1].TrainLoss.Should().BeLessThan(result.Metrics[0].TrainLoss * 0.75, "the loss falls");
        result.Metrics[^1].BackboneTop1.Should().BeGreaterThan(25, "well above the 10% of chance on ten classes");
        result.Metrics[^1].TestTop1.Skip(1).Should().OnlyContain(top1 => top1 > 20, "every branch head learns too");
    }
}
