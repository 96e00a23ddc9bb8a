using SkiaSharp;

namespace DTSKD.Benchmarks.Tests;

/// <summary>The ablation started from a pretrained network, and ML.NET's transfer-learning pipeline it is compared with.</summary>
public sealed class PretrainedStudyTests : IDisposable
{
    private static readonly string Weights = Path.Combine(AppContext.BaseDirectory, "TestData", "resnet18-quarter.pth");
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-pretrained-study-");

    public void Dispose() => _dir.Delete(recursive: true);

    /// <summary>Two classes of 40x40 colour images (red or blue, noisy) in <c>root/train</c> and <c>root/val</c>.</summary>
    private string WriteFolder()
    {
        var root = Path.Combine(_dir.FullName, "photos");
        var rng = new Random(3);
        foreach (var (split, count) in new[] { ("train", 16), ("val", 8) })
        {
            for (var c = 0; c < 2; c++)
            {
                var folder = Directory.CreateDirectory(Path.Combine(root, split, c == 0 ? "red" : "blue")).FullName;
                for (var i = 0; i < count; i++)
                {
                    using var bitmap = new SKBitmap(40, 40);
                    for (var y = 0; y < 40; y++)
                    {
                        for (var x = 0; x < 40; x++)
                        {
                            byte Noise(int v) => (byte)Math.Clamp(v + rng.Next(-40, 40), 0, 255);
                            bitmap.SetPixel(x, y, new SKColor(Noise(c == 0 ? 200 : 40), Noise(60), Noise(c == 0 ? 40 : 200)));
                        }
                    }

                    using var image = SKImage.FromBitmap(bitmap);
                    using var png = image.Encode(SKEncodedImageFormat.Png, 100);
                    File.WriteAllBytes(Path.Combine(folder, $"{i:D3}.png"), png.ToArray());
                }
            }
        }

        return root;
    }

    [Fact]
    public async Task The_ablation_fine_tunes_torchvision_weights_with_the_recipe_s_numbers()
    {
        var photos = WriteFolder();
        var report = Path.Combine(_dir.FullName, "study.md");
        var (code, output) = await BenchProcess.Run(
        [
            "ablation", "--device", "cpu", "--data-type", "folder", "--data-path", photos, "--image-size", "32", "--image-cache", Path.Combine(_dir.FullName, "cache"),
            "--epochs", "1", "--neck-width", "16", "--rows", "ce,dtskd[t2=off]", "--seeds", "1", "--pretrained", Weights, "--freeze", "stem", "--output", report,
        ]);

        code.Should().Be(0, output);
        output.Should().Contain("resnet18-quarter.pth pretrained, neck 16, freeze stem").And.Contain("lr 0.01");
        var settings = File.ReadAllText(Path.Combine(_dir.FullName, "study", "runs", "study.json"));
        settings.Should().Contain($"\"Pretrained\": \"{Weights}\"").And.Contain("\"Freeze\": \"stem\"").And.Contain("\"WeightDecay\": 0.0001").And.Contain("\"BatchSize\": 32");
        File.ReadAllText(report).Should().Contain("| `dtskd[t2=off]` |");

        var (missing, missingOutput) = await BenchProcess.Run(["ablation", "--data-type", "folder", "--data-path", photos, "--pretrained", "absent.pth", "--output", report]);
        missing.Should().Be(2);
        missingOutput.Trim().Should().EndWith("error: --pretrained 'absent.pth' does not exist.");
    }

    [Fact]
    public async Task Ml_net_s_pipeline_trains_on_the_folder_s_train_split_and_scores_its_val_split()
    {
        var photos = WriteFolder();
        var report = Path.Combine(_dir.FullName, "mlnet.md");
        var (code, output) = await BenchProcess.Run(["--data-path", photos, "--seeds", "1", "--output", report], program: BenchProcess.MlNetBaseline);

        code.Should().Be(0, output);
        output.Should().MatchRegex(@"ML\.NET DnnFeaturizeImage\(ResNet18\) \+ LbfgsMaximumEntropy, seed 1: top-1 \d+\.\d\d% in \d+ s");
        File.ReadAllText(report).Should().MatchRegex(@"\| 1 \| \d+\.\d\d \| \d+ \|");

        var (bad, badOutput) = await BenchProcess.Run(["--data-path", _dir.FullName], program: BenchProcess.MlNetBaseline);
        bad.Should().Be(2);
        badOutput.Trim().Should().Be($"error: --data-path '{_dir.FullName}' needs train/<class>/ and val/<class>/ folders.");
        var (seeds, seedsOutput) = await BenchProcess.Run(["--data-path", photos, "--seeds", "1,x"], program: BenchProcess.MlNetBaseline);
        seeds.Should().Be(2);
        seedsOutput.Trim().Should().Be("error: --seeds '1,x' must be comma-separated integers, such as 1,2,3.");
    }

    [Fact]
    public async Task The_fine_tuning_step_bench_refuses_an_unknown_objective_or_a_python_without_torchvision_in_one_line()
    {
        var (objective, objectiveOutput) = await BenchProcess.Run(["finetune-steps", "--pytorch", "/usr/bin/python3", "--objectives", "ce,kd"]);
        objective.Should().Be(2);
        objectiveOutput.Trim().Should().Be("error: --objectives 'kd' is not known; use ce (cross-entropy on the backbone head, what the PyTorch side runs) or dtskd (the recipe).");

        var (python, pythonOutput) = await BenchProcess.Run(["finetune-steps", "--pytorch", "/nonexistent/python3"]);
        python.Should().Be(2);
        pythonOutput.Trim().Split('\n').Should().ContainSingle().Which.Should().StartWith("error: --pytorch '/nonexistent/python3' could not write torchvision's resnet18 (exit 127)");
    }
}
