using System.Collections;
using DTSKD.Core.Data;
using DTSKD.Core.Interop;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using TorchSharp.PyBridge;

namespace DTSKD.Core.Tests;

/// <summary>
/// torchvision weights into DTSKD networks, against torchvision's own forward pass: TestData/torchvision holds a torchvision
/// resnet18 (quarter width, random weights and statistics) and its logits, written by eng/make-torchvision-fixture.py.
/// </summary>
public sealed class TorchvisionResNetTests : IDisposable
{
    private static readonly string Fixture = Path.Combine(AppContext.BaseDirectory, "TestData", "torchvision", "resnet18-quarter.pth");
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-torchvision-");

    public void Dispose() => _dir.Delete(recursive: true);

    private static Dictionary<string, Tensor> ReadAll(string path)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in PyTorchUnpickler.UnpickleStateDict(path))
        {
            result[(string)entry.Key] = (Tensor)entry.Value!;
        }

        return result;
    }

    private static Dictionary<string, Tensor> Reference => ReadAll(Path.Combine(AppContext.BaseDirectory, "TestData", "torchvision", "resnet18-quarter-reference.pt"));

    private string Write(string name, Dictionary<string, Tensor> state)
    {
        var path = Path.Combine(_dir.FullName, name);
        using var stream = File.Create(path);
        PyTorchPickler.PickleStateDict(stream, state, leaveOpen: true);
        return path;
    }

    /// <summary>The largest difference over the largest logit.</summary>
    private static double Gap(MultiBranchModule model, Tensor input, Tensor expected)
    {
        model.eval();
        using var scope = NewDisposeScope();
        using var output = model.call(input);
        return output.Backbone.sub(expected).abs().max().item<float>() / expected.abs().max().item<float>();
    }

    [Fact]
    public void A_torchvision_resnet18_gives_torchvision_s_logits_and_says_what_it_loaded()
    {
        var reference = Reference;
        var network = TorchvisionResNet.Load(Fixture, new MultiBranchModelOptions { ClassCount = 10, NeckWidth = 16 });
        using var model = network.Model;

        Gap(model, reference["input"].sub(tensor(new[] { 0.485f, 0.456f, 0.406f }).view(1, 3, 1, 1)).div(tensor(new[] { 0.229f, 0.224f, 0.225f }).view(1, 3, 1, 1)), reference["logits"])
            .Should().BeLessThan(1e-5);
        model.Should().BeOfType<ResNetDtskd>();
        var file = ReadAll(Fixture).Keys;
        network.Pretrained.Should().BeEquivalentTo(file, "every tensor of the file is loaded, the classifier too: it has the user's 10 classes");
        network.Initialised.Should().NotBeEmpty().And.OnlyContain(n => !file.Contains(n));
        network.Pretrained.Concat(network.Initialised).Should().BeEquivalentTo(model.state_dict().Keys);
        network.Notes.Should().BeEmpty();
        network.Mean.Should().Equal(0.485, 0.456, 0.406);
        network.Stages.Select(s => s.Name).Should().Equal("stem", "stage1", "stage2", "stage3", "stage4");
        network.ParametersThrough("stage1").Should().Contain(["conv1.weight", "bn1.bias", "layer1.1.conv2.weight"]).And.NotContain(n => n.StartsWith("layer2.", StringComparison.Ordinal));
        network.MinimumImageSize.Should().Be(32);
        network.Source.Should().Be(Fixture);
    }

    [Fact]
    public void Gray_images_enter_as_their_channel_replicated_into_rgb()
    {
        var reference = Reference;
        var network = TorchvisionResNet.Load(Fixture, new MultiBranchModelOptions { ClassCount = 10, InputChannels = 1, NeckWidth = 16 });
        using var model = network.Model;

        Gap(model, reference["gray_input"], reference["gray_logits"]).Should().BeLessThan(1e-5);
        network.Mean.Should().Equal(0.449);
        network.Std.Should().Equal(0.226);
        network.Notes.Should().ContainSingle().Which.Should().Contain("replicated");
    }

    [Fact]
    public void Other_classes_get_a_new_classifier_and_safetensors_load_alike()
    {
        var fromPth = TorchvisionResNet.Load(Fixture, new MultiBranchModelOptions { ClassCount = 5, NeckWidth = 16 });
        using var model = fromPth.Model;
        fromPth.Initialised.Should().Contain(["fc.weight", "fc.bias"]);
        fromPth.Pretrained.Should().NotContain(n => n.StartsWith("fc.", StringComparison.Ordinal));
        fromPth.Notes.Should().ContainSingle().Which.Should().Be("The file's 10-class classifier was left out: fc is new, for 5 classes.");

        // The backbone written back as .safetensors, under torchvision's names, loads into the same values. (The classifier
        // shares the model's layers: disposing it would free them.)
        var path = Path.Combine(_dir.FullName, "resnet18.safetensors");
        PyTorchWeights.Save(BackboneClassifier.From(model), path);

        var fromSafetensors = TorchvisionResNet.Load(path, new MultiBranchModelOptions { ClassCount = 5, NeckWidth = 16 });
        using var again = fromSafetensors.Model;
        var expected = model.state_dict();
        foreach (var name in fromPth.Pretrained)
        {
            again.state_dict()[name].allclose(expected[name], 0, 0).Should().BeTrue(name);
        }
    }

    [Fact]
    public void A_resnet34_is_recognised_from_its_blocks()
    {
        var path = Path.Combine(_dir.FullName, "resnet34.pth");
        manual_seed(3);
        using (var source = MultiBranchModels.Create("resnet34_dtskd", new MultiBranchModelOptions { ClassCount = 7, BaseWidth = 16, NeckWidth = 16, Stem = ModelStem.ImageNet }))
        using (var classifier = BackboneClassifier.From(source))
        {
            PyTorchWeights.Save(classifier, path);
        }

        var network = TorchvisionResNet.Load(path, new MultiBranchModelOptions { ClassCount = 7, NeckWidth = 16 });
        using var model = network.Model;
        network.Stages.Single(s => s.Name == "stage3").Parameters.Should().Contain("layer3.5.conv2.weight");
        network.Pretrained.Should().Contain("fc.weight");
    }

    [Fact]
    public void Files_that_are_not_a_torchvision_resnet18_or_34_are_refused_in_one_line_naming_what_differs()
    {
        var options = new MultiBranchModelOptions { ClassCount = 10, NeckWidth = 16 };
        string Refusal(string path)
        {
            var act = () => TorchvisionResNet.Load(path, options).Model.Dispose();
            var message = act.Should().Throw<InvalidDataException>().Which.Message;
            message.Should().NotContain("\n").And.Contain(path);
            return message;
        }

        var text = Path.Combine(_dir.FullName, "notes.pth");
        File.WriteAllText(text, "not a network");
        Refusal(text).Should().Contain("is not a torch.save file");

        var torchvision = ReadAll(Fixture);
        var missing = new Dictionary<string, Tensor>(torchvision);
        missing.Remove("layer2.1.conv2.weight");
        Refusal(Write("missing.pth", missing)).Should().Contain("missing layer2.1.conv2.weight [32, 32, 3, 3]");

        var reshaped = new Dictionary<string, Tensor>(torchvision) { ["layer3.0.bn1.weight"] = ones(7) };
        Refusal(Write("reshaped.pth", reshaped)).Should().Contain("layer3.0.bn1.weight: file [7], resnet18_dtskd [64]");

        var bottleneck = new Dictionary<string, Tensor>(torchvision) { ["layer1.0.conv3.weight"] = ones(64, 16, 1, 1) };
        Refusal(Write("resnet50.pth", bottleneck)).Should().Contain("bottleneck");

        var stranger = new Dictionary<string, Tensor> { ["features.0.weight"] = ones(8, 3, 3, 3), ["classifier.weight"] = ones(10, 8) };
        Refusal(Write("vgg.pth", stranger)).Should().Contain("is not a torchvision ResNet state dict").And.Contain("features.0.weight [8, 3, 3, 3]");

        var odd = Path.Combine(_dir.FullName, "cifar-stem.pth");
        manual_seed(4);
        using (var cifar = MultiBranchModels.Create("resnet18_dtskd", new MultiBranchModelOptions { ClassCount = 10, BaseWidth = 16, NeckWidth = 16 }))
        {
            PyTorchWeights.Save(cifar, odd);
        }

        Refusal(odd).Should().Contain("7x7 ImageNet stem");
        ((Action)(() => TorchvisionResNet.Load(Path.Combine(_dir.FullName, "absent.pth"), options))).Should().Throw<FileNotFoundException>();
        ((Action)(() => TorchvisionResNet.Load(Fixture, new MultiBranchModelOptions { ClassCount = 10, InputChannels = 4 }))).Should().Throw<InvalidDataException>().WithMessage("*3-channel images; these have 4*");
    }

    [Fact]
    public void A_pretrained_network_fine_tunes_with_its_stem_frozen()
    {
        var network = TorchvisionResNet.Load(Fixture, new MultiBranchModelOptions { ClassCount = 2, NeckWidth = 16 });
        using var model = network.Model;
        var generator = new Generator(5);
        using var images = randint(0, 256, [32, 3, 32, 32], generator: generator, dtype: ScalarType.Byte);
        using var labels = arange(32, dtype: ScalarType.Int64).remainder(2);
        using var data = ImageDataset.FromTensors(images, labels, 2);
        var stem = model.named_parameters().Where(p => p.name.StartsWith("conv1.", StringComparison.Ordinal)).Select(p => p.parameter.detach().clone()).ToList();
        var fc = model.named_parameters().Single(p => p.name == "fc.weight").parameter.detach().clone();
        var options = TrainerOptions.FineTuningRecipe(1);
        (options.BatchSize, options.EvalBatchSize, options.FineTuning) = (16, 32, FineTuning.For(network, freezeThrough: "stem"));
        using var loss = DualTeacherLoss.For(model, data.Count);
        using (var trainer = new Trainer(model, loss, data, data, new PadCropFlip(network.Mean, network.Std, padding: 4), options))
        {
            trainer.Optimizer.ParamGroups.Select(g => g.LearningRate).Should().Equal(0.01, 0.001);
            trainer.Run();
        }

        model.named_parameters().Where(p => p.name.StartsWith("conv1.", StringComparison.Ordinal)).Select(p => p.parameter).Zip(stem)
            .Should().OnlyContain(p => p.First.allclose(p.Second, 0, 0));
        model.named_parameters().Single(p => p.name == "fc.weight").parameter.allclose(fc, 0, 0).Should().BeFalse();
    }
}
