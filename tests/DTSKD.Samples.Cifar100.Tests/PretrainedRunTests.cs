using System.Collections;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100.Tests;

/// <summary>The sample started from torchvision weights (<c>--pretrained</c>) on a folder of one's own images.</summary>
public sealed class PretrainedRunTests : SampleTestBase
{
    private static readonly string Weights = Path.Combine(AppContext.BaseDirectory, "TestData", "resnet18-quarter.pth");

    private string[] Common(string folder, string name) =>
    [
        "--data-type", "folder", "--data-path", folder, "--image-cache", Path.Combine(Dir.FullName, "cache"), "--experiments-dir", Path.Combine(Dir.FullName, "experiments"),
        "--experiments-name", name, "--neck-width", "16", "--device", "cpu", "--precision", "fp32", "--log-interval", "2",
    ];

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
            .And.Contain("lr 0.01 ");
        var run = Path.Combine(Dir.FullName, "experiments", "ft");
        var config = ExperimentOutputs.ReadConfig(run);
        (config.Pretrained, config.ClassifierType, config.BaseWidth, config.Stem, config.BatchSize, config.Lr).Should().Be((Weights, "resnet18_dtskd", 16, "imagenet", 32, 0.01));
        config.Mean.Should().Equal(0.485, 0.456, 0.406);
        config.Std.Should().Equal(0.229, 0.224, 0.225);

        (await Run("evaluate", "--run", run)).Code.Should().Be(Sample.Ok);
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
    public async Task Weights_and_data_that_do_not_fit_are_one_line_and_nothing_is_written()
    {
        var folder = WriteImageFolder("small", trainPerClass: 4, valPerClass: 2);
        var text = Path.Combine(Dir.FullName, "notes.pth");
        await File.WriteAllTextAsync(text, "not weights");
        var experiments = Path.Combine(Dir.FullName, "experiments");
        foreach (var (args, message) in new (string[], string)[]
                 {
                     (["--pretrained", Path.Combine(Dir.FullName, "absent.pth")], $"error: --pretrained: Pretrained weights '{Path.Combine(Dir.FullName, "absent.pth")}' do not exist."),
                     (["--pretrained", text], $"error: --pretrained: '{text}' is not a torch.save file: torch.save writes a zip archive"),
                     (["--pretrained", "model.onnx"], "error: --pretrained 'model.onnx': ONNX backbones are not supported yet"),
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
