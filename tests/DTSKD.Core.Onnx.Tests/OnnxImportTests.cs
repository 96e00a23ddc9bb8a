using System.Reflection;
using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Onnx.Import;
using DTSKD.Core.Training;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Tensor = TorchSharp.torch.Tensor;

namespace DTSKD.Core.Onnx.Tests;

/// <summary>ONNX classifiers imported as trainable backbones: forward equal to ONNX Runtime's, fine-tuned, refused in one line.</summary>
public sealed class OnnxImportTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "TestData", name);

    /// <summary>ML.NET's ResNet18.onnx from its NuGet package (restored by the test project, not committed).</summary>
    internal static string MlNetResNet18
    {
        get
        {
            var path = typeof(OnnxImportTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "MlNetResNet18").Value!;
            File.Exists(path).Should().BeTrue("the test project downloads Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1 at restore");
            return path;
        }
    }

    /// <summary>ONNX Runtime's output for each image of the batch, one at a time (the files fix the batch at 1).</summary>
    private static float[] Runtime(string path, Tensor images, string? output = null)
    {
        using var session = new InferenceSession(path);
        var name = session.InputMetadata.Keys.Single();
        var values = new List<float>();
        for (var i = 0; i < images.shape[0]; i++)
        {
            using var one = images.narrow(0, i, 1).contiguous();
            var input = new DenseTensor<float>(one.data<float>().ToArray(), [.. one.shape.Select(d => (int)d)]);
            using var results = session.Run([NamedOnnxValue.CreateFromTensor(name, input)]);
            values.AddRange((output is null ? results[0] : results.Single(r => r.Name == output)).AsEnumerable<float>());
        }

        return [.. values];
    }

    private static double Gap(float[] ours, float[] theirs) =>
        ours.Zip(theirs).Max(p => Math.Abs(p.First - p.Second)) / theirs.Max(Math.Abs);

    [Theory]
    [InlineData("ops-opset7.onnx", "r1")]
    [InlineData("ops-opset14.onnx", "k1")]
    public void Every_supported_operator_computes_what_onnx_runtime_computes(string file, string branchPoint)
    {
        manual_seed(2);
        using var images = randn(3, 3, 16, 16);
        var (backbone, notes) = OnnxImport.LoadBackbone(Fixture(file), new OnnxImportOptions { BranchPoints = [branchPoint], FeaturePoint = "logits" });
        using (backbone)
        {
            backbone.eval();
            using var scope = NewDisposeScope();
            var output = backbone.call(images);
            using var logits = output.Feature.contiguous();

            Gap(logits.data<float>().ToArray(), Runtime(Fixture(file), images)).Should().BeLessThan(1e-4);
            output.Stages.Single().shape[1].Should().Be(8);
            backbone.named_parameters().Should().NotBeEmpty().And.OnlyContain(p => p.parameter.requires_grad);
        }

        if (file == "ops-opset14.onnx")
        {
            notes.Should().Contain(n => n.Contains("'whole3' covers the whole 6x6 map")).And.Contain(n => n.Contains("The reshape 'reshape' fixed [1, 16] at the file's input size; it takes the batch from its input."));
        }
    }

    [Fact]
    public void Ml_net_s_resnet18_matches_onnx_runtime_and_is_found_to_have_three_down_sampling_points()
    {
        manual_seed(3);
        using var images = rand(2, 3, 224, 224).mul(255).sub(115);
        var (backbone, notes) = OnnxImport.LoadBackbone(MlNetResNet18);
        using (backbone)
        {
            backbone.eval();
            using var scope = NewDisposeScope();
            var output = backbone.call(images);
            using var feature = output.Feature.contiguous();

            Gap(feature.data<float>().ToArray(), Runtime(MlNetResNet18, images)).Should().BeLessThan(1e-4);
            feature.shape.Should().Equal(2, 512, 1, 1);
            output.Stages.Select(s => s.shape[1]).Should().Equal(64, 128, 256);
            backbone.NodeCount.Should().Be(74, "22 convolutions, 22 batch norms, 19 ReLUs, 9 additions, a max and an average pool");
            backbone.modules().OfType<TorchSharp.Modules.BatchNorm2d>().Should().HaveCount(22);
        }

        notes.Should().HaveCount(2).And.Contain(n => n.Contains("'Pooling395' covers the whole 7x7 map"))
            .And.Contain("Branches at the ends of the last 3 stages before the feature: 'ReLU283_Output_0' (64x56x56), 'ReLU315_Output_0' (128x28x28), 'ReLU347_Output_0' (256x14x14).");
    }

    [Fact]
    public void An_imported_network_becomes_a_dtskd_model_that_fine_tunes_with_its_stem_frozen()
    {
        var network = OnnxImport.Load(MlNetResNet18, new MultiBranchModelOptions { ClassCount = 3, InputChannels = 1, NeckWidth = 32 }, OnnxImportOptions.MlNetResNet18);
        using var model = network.Model;
        network.Stages.Select(s => s.Name).Should().Equal("stem", "stage1", "stage2", "stage3", "stage4");
        network.Stages[0].Parameters.Should().HaveCount(3, "the stem is the first convolution and its batch norm");
        network.Pretrained.Should().OnlyContain(n => n.StartsWith("backbone.", StringComparison.Ordinal));
        network.Initialised.Should().Contain(["fc.weight", "fc.bias"]).And.Contain(n => n.StartsWith("neck.", StringComparison.Ordinal));
        network.Mean.Should().ContainSingle().Which.Should().BeApproximately(114.04 / 255, 1e-3);
        network.Notes.Should().Contain(n => n.Contains("BGR")).And.Contain(n => n.Contains("Gray images"));
        network.MinimumImageSize.Should().Be(32);

        // 64-pixel gray images: a size the file was not exported for.
        var generator = new Generator(4);
        using var images = randint(0, 256, [24, 1, 64, 64], generator: generator, dtype: ScalarType.Byte);
        using var labels = arange(24, dtype: ScalarType.Int64).remainder(3);
        using var data = ImageDataset.FromTensors(images, labels, 3);
        var stem = network.Stages[0].Parameters.ToDictionary(n => n, n => model.state_dict()[n].clone());
        var deep = network.Stages[^1].Parameters[0];
        using var before = model.state_dict()[deep].clone();
        var options = TrainerOptions.FineTuningRecipe(1);
        (options.BatchSize, options.EvalBatchSize, options.FineTuning) = (12, 24, FineTuning.For(network, freezeThrough: "stem"));
        using var loss = DualTeacherLoss.For(model, data.Count);
        using (var trainer = new Trainer(model, loss, data, data, new PadCropFlip(network.Mean, network.Std, padding: 8), options))
        {
            trainer.Run().Metrics.Should().ContainSingle();
        }

        stem.Should().OnlyContain(p => model.state_dict()[p.Key].allclose(p.Value, 0, 0));
        model.state_dict()[deep].allclose(before, 0, 0).Should().BeFalse("the last stage trains");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_imported_network_exports_again_with_its_branches_and_onnx_runtime_gives_its_logits(bool fold)
    {
        var network = OnnxImport.Load(MlNetResNet18, new MultiBranchModelOptions { ClassCount = 4, NeckWidth = 32 }, OnnxImportOptions.MlNetResNet18);
        using var model = network.Model;
        model.eval();
        manual_seed(5);
        using var images = randn(2, 3, 64, 64);
        using var output = model.call(images);

        var exported = OnnxExportTests.RunOnnx(
            OnnxExport.ToBytes(model, new OnnxExportOptions { ImageSize = 64, Mean = network.Mean, Std = network.Std, AllHeads = true, FoldBatchNorm = fold }), images);

        var heads = exported.Values.ToList();
        heads.Should().HaveCount(4, "the backbone head and three branches");
        foreach (var (onnx, torch) in heads.Zip(output.Heads))
        {
            using var t = torch.contiguous();
            var flat = t.data<float>().ToArray();
            Gap([.. onnx.SelectMany(r => r)], flat).Should().BeLessThan(1e-4);
        }
    }

    [Fact]
    public void Files_the_importer_cannot_take_are_refused_in_one_line_naming_the_node()
    {
        string Refusal(string path, OnnxImportOptions? options = null)
        {
            var act = () => OnnxImport.LoadBackbone(path, options).Backbone.Dispose();
            var message = act.Should().Throw<InvalidDataException>().Which.Message;
            message.Should().NotContain("\n").And.Contain(path);
            return message;
        }

        Refusal(Fixture("unsupported-elu.onnx")).Should().Contain("ONNX node 'elu1' (Elu) is not supported; the importer knows Abs, Add, AveragePool");
        var text = Path.Combine(Path.GetTempPath(), $"dtskd-not-onnx-{Guid.NewGuid():N}.onnx");
        File.WriteAllBytes(text, [0x0a, 0xff, 0xff, 0xff, 0x01, 0x02]);
        try
        {
            Refusal(text).Should().Contain("is not an ONNX model");
        }
        finally
        {
            File.Delete(text);
        }

        Refusal(Fixture("ops-opset7.onnx"), new OnnxImportOptions { BranchPoints = ["nowhere"], FeaturePoint = "logits" }).Should().Contain("has no tensor 'nowhere'");
        Refusal(Fixture("ops-opset7.onnx"), new OnnxImportOptions { BranchPoints = ["f"], FeaturePoint = "logits" }).Should().Contain("branch point 'f' is [1, 16], not a feature map");
        Refusal(Fixture("ops-opset14.onnx"), new OnnxImportOptions { FeaturePoint = "k1" }).Should().Contain("no branch points found");
        ((Action)(() => OnnxImport.LoadBackbone(Fixture("ops-opset7.onnx"), new OnnxImportOptions { BranchPoints = ["r1"] }, inputChannels: 4))).Should()
            .Throw<InvalidDataException>().WithMessage("*'conv1' takes 3-channel images; these have 4*");
        ((Action)(() => OnnxImport.LoadBackbone(Fixture("absent.onnx")))).Should().Throw<FileNotFoundException>();
    }
}
