using System.Collections;
using System.Reflection;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100.Tests;

/// <summary>The sample started from torchvision weights (<c>--pretrained</c>) on a folder of one's own images.</summary>
public sealed class PretrainedRunTests : SampleTestBase
{
    private static readonly string Weights = Path.Combine(AppContext.BaseDirectory, "TestData", "resnet18-quarter.pth");

    /// <summary>ML.NET's ResNet18.onnx from its NuGet package (restored by the test project, not committed).</summary>
    private static string MlNetResNet18 =>
        typeof(PretrainedRunTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "MlNetResNet18").Value!;

    private string[] Common(string folder, string name) =>
    [
        "--data-type", "folder", "--data-path", folder, "--image-cache", Path.Combine(Dir.FullName, "cache"), "--experiments-dir", Path.Combine(Dir.FullName, "experiments"),
        "--experiments-name", name, "--neck-width", "16", "--device", "cpu", "--precision", "fp32", "--log-interval", "2",
    ];

    /// <summary>evaluate's figures equal those the run reported for its last epoch (printed beside them).</summary>
    private static void EvaluatesToWhatItReported(string output)
    {
        var reported = System.Text.RegularExpressions.Regex.Match(output, @"The run reported for epoch \d+: backbone top-1 ([\d.]+)%, top-5 ([\d.]+)%, loss ([\d.]+)\.");
        reported.Success.Should().BeTrue(output);
        var top1 = System.Text.RegularExpressions.Regex.Match(output, @"backbone\s+top-1 ([\d.]+)%").Groups[1].Value;
        var rest = System.Text.RegularExpressions.Regex.Match(output, @"backbone\s+top-5 ([\d.]+)%\s+loss ([\d.]+)");
        (top1, rest.Groups[1].Value, rest.Groups[2].Value).Should().Be((reported.Groups[1].Value, reported.Groups[2].Value, reported.Groups[3].Value), output);
    }

    private static Dictionary<string, Tensor> Read(string path)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in PyTorchUnpickler.UnpickleStateDict(path))
        {
            result[(string)entry.Key] = (Tensor)entry.Value!;
        }

        return result;
    }

    [Fact]
    public async Task A_run_from_torchvision_weights_says_what_it_loaded_keeps_the_frozen_stem_and_evaluates_and_exports()
    {
        var folder = WriteImageFolder("photos");
        var (code, output, errors) = await Run([.. Common(folder, "ft"), "--pretrained", Weights, "--freeze", "stem", "--epochs", "2"]);

        code.Should().Be(Sample.Ok, output + errors);
        output.Should().Contain($"Pretrained: 120 tensors of '{Weights}' (the backbone); new: ")
            .And.Contain("note: The file's 10-class classifier was left out: fc is new, for 3 classes.")
            .And.Contain("lr 0.01 ")
            .And.Contain("note: --pretrained trains with cross-entropy (--objective ce) unless an objective is given");
        var run = Path.Combine(Dir.FullName, "experiments", "ft");
        var config = ExperimentOutputs.ReadConfig(run);
        config.Objective.Should().Be("ce", "a pretrained start fine-tunes with cross-entropy unless an objective is given");
        (config.Pretrained, config.ClassifierType, config.BaseWidth, config.Stem, config.BatchSize, config.Lr).Should().Be((Weights, "resnet18_dtskd", 16, "imagenet", 32, 0.01));
        config.Mean.Should().Equal(0.485, 0.456, 0.406);
        config.Std.Should().Equal(0.229, 0.224, 0.225);

        var (evaluated, evaluation, _) = await Run("evaluate", "--run", run);
        evaluated.Should().Be(Sample.Ok);
        EvaluatesToWhatItReported(evaluation);
        (await Run("export", "--run", run)).Code.Should().Be(Sample.Ok);
        var exported = Read(Path.Combine(run, "backbone.pt"));
        var torchvision = Read(Weights);
        exported["conv1.weight"].equal(torchvision["conv1.weight"]).all().item<bool>().Should().BeTrue("the frozen stem is ImageNet's");
        exported["bn1.running_mean"].equal(torchvision["bn1.running_mean"]).all().item<bool>().Should().BeTrue("the frozen stem's statistics too");
        exported["layer4.1.conv2.weight"].equal(torchvision["layer4.1.conv2.weight"]).all().item<bool>().Should().BeFalse("stage 4 trains");

        var (refused, _, refusal) = await Run([.. Common(folder, "ft"), "--resume", run, "--freeze", "stage1", "--epochs", "3"]);
        refused.Should().Be(Sample.BadArguments);
        refusal.Should().Contain("--resume cannot change --freeze (the run has stem, the command line stage1)");
    }

    [Fact]
    public async Task A_run_from_ml_net_s_onnx_resnet18_trains_evaluates_exports_to_onnx_and_predicts()
    {
        File.Exists(MlNetResNet18).Should().BeTrue("the test project downloads Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1 at restore");
        var folder = WriteImageFolder("photos", trainPerClass: 8, valPerClass: 4);
        var (code, output, errors) = await Run([.. Common(folder, "onnx"), "--pretrained", MlNetResNet18, "--freeze", "stage1", "--freeze-bn", "--epochs", "1", "--batch-size", "12", "--objective", "dtskd"]);

        code.Should().Be(Sample.Ok, output + errors);
        output.Should().NotContain("--pretrained trains with cross-entropy");
        output.Should().Contain("Recognised ML.NET's ResNet18.onnx").And.Contain($"of '{MlNetResNet18}'").And.Contain("note: The network takes BGR images");
        var run = Path.Combine(Dir.FullName, "experiments", "onnx");
        var config = ExperimentOutputs.ReadConfig(run);
        (config.ClassifierType, config.Pretrained, config.Freeze, config.FreezeBn, config.Objective).Should().Be(("onnx", MlNetResNet18, "stage1", true, "dtskd"));

        var (evaluated, evaluation, _) = await Run("evaluate", "--run", run);
        evaluated.Should().Be(Sample.Ok);
        EvaluatesToWhatItReported(evaluation);
        var (exported, exportOutput, exportErrors) = await Run("export", "--run", run, "--format", "onnx");
        exported.Should().Be(Sample.Ok, exportOutput + exportErrors);
        var image = Directory.GetFiles(Path.Combine(folder, "val", "class2")).Order(StringComparer.Ordinal).First();
        var (predicted, byTorch, _) = await Run("predict", "--run", run, "--top", "1", image);
        var (predictedOnnx, byOnnx, onnxErrors) = await Run("predict", "--onnx", Path.Combine(run, "backbone.onnx"), "--top", "1", image);
        (predicted, predictedOnnx).Should().Be((Sample.Ok, Sample.Ok), onnxErrors);
        byOnnx.Split(' ')[^2].Should().Be(byTorch.Split(' ')[^2], "the exported network names the class TorchSharp names");

        var (badPoint, _, badPointErrors) = await Run([.. Common(folder, "onnx-bad"), "--pretrained", MlNetResNet18, "--branch-points", "nowhere", "--epochs", "1"]);
        badPoint.Should().Be(Sample.Failed);
        badPointErrors.Trim().Should().Be($"error: --pretrained: '{MlNetResNet18}' has no tensor 'nowhere' computed from the image (a branch point or the feature must be a node's output).");
        Directory.Exists(Path.Combine(Dir.FullName, "experiments", "onnx-bad")).Should().BeFalse();
    }

    [Fact]
    public async Task A_divergence_from_a_file_without_batch_norms_names_them_and_the_export_that_keeps_them()
    {
        var folder = WriteImageFolder("photos", trainPerClass: 8, valPerClass: 4);
        var file = Path.Combine(Dir.FullName, "folded.onnx");
        File.Copy(Path.Combine(AppContext.BaseDirectory, "TestData", "torchvision", "shufflenet_v2-opset17-eval.onnx"), file);

        var (code, output, errors) = await Run([.. Common(folder, "folded"), "--pretrained", file, "--epochs", "1", "--batch-size", "8", "--lr", "1e6"]);

        code.Should().Be(Sample.Diverged, output);
        errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should()
            .StartWith("error: The training loss became NaN or infinite at epoch 0 (0-based)")
            .And.EndWith("no epoch had finished, so there is no checkpoint. The pretrained file has no batch norms (an eval-mode export folds them): export it with them kept (docs/pretrained.md), or lower --lr.");
    }

    [Fact]
    public async Task A_file_torch_onnx_wrote_trains_with_no_other_flag_and_with_the_branches_asked_for()
    {
        var folder = WriteImageFolder("photos", trainPerClass: 8, valPerClass: 4);
        var file = Path.Combine(Dir.FullName, "shufflenet.onnx");
        File.Copy(Path.Combine(AppContext.BaseDirectory, "TestData", "torchvision", "shufflenet_v2-opset17-train.onnx"), file);
        var (code, output, errors) = await Run([.. Common(folder, "shufflenet"), "--pretrained", file, "--epochs", "1", "--batch-size", "8"]);
        code.Should().Be(Sample.Ok, output + errors);
        output.Should().Contain("The file's metadata names no normalisation: ImageNet's mean and standard deviation are used")
            .And.Contain("note: Branches at the ends of the last 3 stages before the feature:");
        var run = Path.Combine(Dir.FullName, "experiments", "shufflenet");
        ExperimentOutputs.ReadConfig(run).ImageSize.Should().Be(64, "a folder's images take the size the file was exported at");
        ExperimentOutputs.ReadConfig(run).PretrainedSha256.Should().HaveLength(64);
        var (evaluated, evaluation, _) = await Run("evaluate", "--run", run);
        evaluated.Should().Be(Sample.Ok);
        EvaluatesToWhatItReported(evaluation);

        // The file changed under the run: evaluate and resume refuse it.
        File.Copy(Path.Combine(AppContext.BaseDirectory, "TestData", "torchvision", "shufflenet_v2-opset17-eval.onnx"), file, overwrite: true);
        var (changed, _, changedErrors) = await Run("evaluate", "--run", run);
        changed.Should().Be(Sample.Failed);
        changedErrors.TrimEnd().Should().StartWith($"error: '{file}' is not the file the run started from (its SHA-256 is ").And.EndWith("restore it, or start a new run.");
        var (resumed, _, resumedErrors) = await Run([.. Common(folder, "shufflenet"), "--resume", "--epochs", "2"]);
        resumed.Should().Be(Sample.Failed);
        resumedErrors.TrimEnd().Should().StartWith($"error: --pretrained: '{file}' is not the file the run started from");

        (code, output, errors) = await Run([.. Common(folder, "two"), "--pretrained", file, "--branches", "2", "--image-size", "48", "--epochs", "1", "--batch-size", "8"]);
        code.Should().Be(Sample.Ok, output + errors);
        output.Should().Contain("note: Branches at the ends of the last 2 stages before the feature:");
        var two = Path.Combine(Dir.FullName, "experiments", "two");
        (await Run("evaluate", "--run", two)).Code.Should().Be(Sample.Ok);
        var (exported, exportOutput, exportErrors) = await Run("export", "--run", two, "--format", "onnx", "--all-heads");
        exported.Should().Be(Sample.Ok, exportOutput + exportErrors);
        Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(two, "backbone.onnx"))).Graph.Output.Select(o => o.Name).Should().Equal("logits", "branch1_logits", "branch2_logits");

        var (weighted, _, weightedErrors) = await Run([.. Common(folder, "weighted"), "--pretrained", file, "--branches", "2", "--b2-weight", "2", "--epochs", "1"]);
        weighted.Should().Be(Sample.BadArguments);
        weightedErrors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should().Be("error: --b1-weight, --b2-weight and --b3-weight weigh three branches; this network has 2: leave them at 1 (every branch then takes it).");
        Directory.Exists(Path.Combine(Dir.FullName, "experiments", "weighted")).Should().BeFalse();

        var vgg = Path.Combine(AppContext.BaseDirectory, "TestData", "torchvision", "vgg-opset17-eval.onnx");
        var (sized, _, sizedErrors) = await Run([.. Common(folder, "sized"), "--pretrained", vgg, "--image-size", "64", "--epochs", "1"]);
        sized.Should().Be(Sample.Failed);
        sizedErrors.TrimEnd().Should().Be($"error: --pretrained: '{vgg}' takes 32-pixel images only (a layer fixes the size it was exported at); these are 64: give --image-size 32, or leave --image-size out.");
        Directory.Exists(Path.Combine(Dir.FullName, "experiments", "sized")).Should().BeFalse();
        (await Run([.. Common(folder, "vgg"), "--pretrained", vgg, "--epochs", "1", "--batch-size", "8"])).Code.Should().Be(Sample.Ok, "without --image-size the folder takes the file's 32 pixels");
    }

    [Fact]
    public async Task Weights_and_data_that_do_not_fit_are_one_line_and_nothing_is_written()
    {
        var folder = WriteImageFolder("small", trainPerClass: 4, valPerClass: 2);
        var text = Path.Combine(Dir.FullName, "notes.pth");
        await File.WriteAllTextAsync(text, "not weights");
        var fakeOnnx = Path.Combine(Dir.FullName, "notes.onnx");
        await File.WriteAllTextAsync(fakeOnnx, "not a network");
        var experiments = Path.Combine(Dir.FullName, "experiments");
        foreach (var (args, message) in new (string[], string)[]
                 {
                     (["--pretrained", Path.Combine(Dir.FullName, "absent.pth")], $"error: --pretrained: Pretrained weights '{Path.Combine(Dir.FullName, "absent.pth")}' do not exist."),
                     (["--pretrained", text], $"error: --pretrained: '{text}' is not a torch.save file: torch.save writes a zip archive"),
                     (["--pretrained", "model.onnx"], "error: --pretrained: ONNX model 'model.onnx' does not exist."),
                     (["--pretrained", fakeOnnx], $"error: --pretrained: '{fakeOnnx}' is not an ONNX model"),
                     (["--pretrained", MlNetResNet18, "--base-width", "32"], $"error: --pretrained '{MlNetResNet18}' is an ONNX network, whose layers are the file's; --base-width does not apply"),
                     (["--pretrained", Weights, "--branch-points", "x"], "error: --branch-points applies to an .onnx --pretrained"),
                     (["--pretrained", Weights, "--classifier-type", "resnet34_dtskd"], $"error: --pretrained '{Weights}' builds resnet18_dtskd at width 16 with the ImageNet stem; --classifier-type resnet34_dtskd does not fit it"),
                     (["--pretrained", Weights, "--image-size", "24"], "error: --pretrained: the ImageNet stem takes images of 32 pixels and more; folder's are 24"),
                     (["--freeze", "stage2"], "error: --freeze applies with --pretrained only."),
                 })
        {
            var (code, output, errors) = await Run([.. Common(folder, "bad"), "--epochs", "1", .. args]);
            code.Should().Be(Sample.BadArguments, string.Join(" ", args) + output);
            errors.TrimEnd().Split('\n').Should().ContainSingle().Which.Should().StartWith(message);
        }

        var (fashion, _, fashionErrors) = await Run("--data-type", "fashion-mnist", "--pretrained", Weights, "--experiments-dir", experiments);
        fashion.Should().Be(Sample.BadArguments);
        fashionErrors.Should().Contain("fashion-mnist's are 28");
        Directory.Exists(experiments).Should().BeFalse("nothing of a refused run is written");
    }
}
