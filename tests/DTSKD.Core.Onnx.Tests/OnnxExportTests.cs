using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Tensor = TorchSharp.torch.Tensor;
using TorchSharp.Modules;
using DTSKD.Core.Deployment;
using static TorchSharp.torch.nn;

namespace DTSKD.Core.Onnx.Tests;

/// <summary>Every exported network runs in ONNX Runtime and gives TorchSharp's eval-mode logits on real images.</summary>
public sealed class OnnxExportTests
{
    private const string FashionMnist = "/usr/share/datasets/fashion-mnist";

    /// <summary>The first n Fashion-MNIST test images, normalised as the trainer's evaluation prepares them, and their labels.</summary>
    internal static (Tensor Images, long[] Labels) Fashion(int n, int offset = 0)
    {
        Directory.Exists(FashionMnist).Should().BeTrue("CI installs Debian's dataset-fashion-mnist (see .ci/run)");
        using var data = StandardDatasets.LoadAsync(StandardDatasets.FashionMnist, testLimit: offset + n).GetAwaiter().GetResult();
        using var reader = data.Test.OpenReader(CPU);
        using var order = arange(offset, offset + n, dtype: ScalarType.Int64);
        using var batch = reader.Read(order, n).Single();
        return (data.Preprocessing.Prepare(batch.Images).DetachFromDisposeScope(), batch.Labels.data<long>().ToArray());
    }

    /// <summary>Runs the file and returns each named output as [rows, classes].</summary>
    internal static Dictionary<string, float[][]> RunOnnx(byte[] model, Tensor images)
    {
        using var session = new InferenceSession(model);
        var shape = images.shape.Select(d => (int)d).ToArray();
        var input = new DenseTensor<float>(images.contiguous().data<float>().ToArray(), shape);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(OnnxContract.InputName, input)]);
        return results.ToDictionary(r => r.Name, r =>
        {
            var t = r.AsTensor<float>();
            var (rows, classes) = (t.Dimensions[0], t.Dimensions[1]);
            var flat = t.ToArray();
            return Enumerable.Range(0, rows).Select(i => flat.AsSpan(i * classes, classes).ToArray()).ToArray();
        });
    }

    private static float[][] Rows(Tensor logits)
    {
        var (rows, classes) = ((int)logits.shape[0], (int)logits.shape[1]);
        var flat = logits.detach().contiguous().data<float>().ToArray();
        return [.. Enumerable.Range(0, rows).Select(i => flat.AsSpan(i * classes, classes).ToArray())];
    }

    /// <summary>Each row within 1e-4 of its largest TorchSharp logit.</summary>
    private static void ShouldMatch(float[][] onnx, float[][] torch, string what)
    {
        onnx.Should().HaveCount(torch.Length, what);
        for (var r = 0; r < torch.Length; r++)
        {
            var scale = torch[r].Max(Math.Abs);
            var worst = onnx[r].Zip(torch[r]).Max(p => Math.Abs(p.First - p.Second));
            worst.Should().BeLessThanOrEqualTo(1e-4f * scale, $"{what}, row {r}: ONNX Runtime within 1e-4 of the row's largest logit ({scale})");
        }
    }

    /// <summary>A model with running statistics of real data (not the initial 0 and 1), in eval mode.</summary>
    internal static MultiBranchModule Trained(string name, ModelStem stem, int classes = 10)
    {
        manual_seed(1);
        var model = MultiBranchModels.Create(name, new MultiBranchModelOptions { ClassCount = classes, InputChannels = 1, BaseWidth = 16, NeckWidth = 32, Stem = stem });
        var (images, _) = Fashion(64, offset: 100);
        using (no_grad())
        {
            model.train();
            for (var i = 0; i < 3; i++)
            {
                using var output = model.call(images);
            }
        }

        images.Dispose();
        model.eval();
        return model;
    }

    private static OnnxExportOptions Options(bool fold, bool allHeads = false) => new()
    {
        ImageSize = 28, Mean = PadCropFlip.FashionMnist.Mean, Std = PadCropFlip.FashionMnist.Std, FoldBatchNorm = fold, AllHeads = allHeads,
    };

    [Theory]
    [InlineData("resnet18_dtskd", ModelStem.Cifar)]
    [InlineData("resnet34_dtskd", ModelStem.Cifar)]
    [InlineData("vgg16_dtskd", ModelStem.Cifar)]
    [InlineData("resnext18_dtskd", ModelStem.Cifar)]
    [InlineData("shufflev2_dtskd", ModelStem.Cifar)]
    [InlineData("resnet18_dtskd", ModelStem.ImageNet)]
    [InlineData("shufflev2_dtskd", ModelStem.ImageNet)]
    public void OnnxRuntime_gives_TorchSharps_logits_at_batch_1_and_7_folded_and_not(string name, ModelStem stem)
    {
        using var model = Trained(name, stem);
        using var backbone = BackboneClassifier.From(model);
        var (images, _) = Fashion(7);
        using var _ = images;
        using var one = images.narrow(0, 0, 1);
        float[][] expected7, expected1;
        using (no_grad())
        {
            using var l7 = backbone.call(images);
            using var l1 = backbone.call(one);
            (expected7, expected1) = (Rows(l7), Rows(l1));
        }

        foreach (var fold in new[] { false, true })
        {
            var bytes = OnnxExport.ToBytes(model, Options(fold));
            ShouldMatch(RunOnnx(bytes, images)[OnnxContract.LogitsName], expected7, $"{name} {stem} folded={fold} batch 7");
            ShouldMatch(RunOnnx(bytes, one)[OnnxContract.LogitsName], expected1, $"{name} {stem} folded={fold} batch 1");
        }
    }

    [Theory]
    [InlineData("resnet18_dtskd")]
    [InlineData("shufflev2_dtskd")]
    public void Every_head_exports_as_an_early_exit(string name)
    {
        using var model = Trained(name, ModelStem.Cifar);
        var (images, _) = Fashion(7);
        using var _ = images;
        using var output = model.call(images);
        var onnx = RunOnnx(OnnxExport.ToBytes(model, Options(fold: true, allHeads: true)), images);

        onnx.Keys.Should().BeEquivalentTo([OnnxContract.LogitsName, .. Enumerable.Range(1, model.BranchCount).Select(OnnxContract.BranchName)]);
        ShouldMatch(onnx[OnnxContract.LogitsName], Rows(output.Backbone), "backbone");
        for (var k = 1; k <= model.BranchCount; k++)
        {
            ShouldMatch(onnx[OnnxContract.BranchName(k)], Rows(output.Branches[k - 1]), $"branch {k}");
        }
    }

    [Fact]
    public void The_metadata_carries_the_preprocessing_contract_and_folding_removes_the_batch_norms()
    {
        using var model = Trained("resnet18_dtskd", ModelStem.Cifar);
        string[] names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle \"boot\""];
        var path = Path.Combine(Path.GetTempPath(), $"dtskd-onnx-{Guid.NewGuid():N}.onnx");
        try
        {
            var summary = OnnxExport.Export(model, path, new OnnxExportOptions
            {
                ImageSize = 28, Mean = [0.286], Std = [0.353], ClassNames = names, FoldBatchNorm = true,
            });
            summary.FoldedBatchNorms.Should().Be(20, "every convolution of resnet18_dtskd's backbone is followed by its batch norm");
            summary.Outputs.Should().Equal(OnnxContract.LogitsName);
            using var session = new InferenceSession(path);
            var meta = session.ModelMetadata.CustomMetadataMap;
            meta[OnnxContract.ImageSizeKey].Should().Be("28");
            meta[OnnxContract.DecodeSizeKey].Should().Be("28");
            meta[OnnxContract.ChannelsKey].Should().Be("1");
            meta[OnnxContract.MeanKey].Should().Be("0.286");
            meta[OnnxContract.StdKey].Should().Be("0.353");
            System.Text.Json.JsonSerializer.Deserialize<string[]>(meta[OnnxContract.ClassNamesKey]).Should().Equal(names);
            meta[OnnxContract.ModelKey].Should().Be("resnet18_dtskd");
            meta[OnnxContract.FoldedKey].Should().Be("true");
            session.InputMetadata[OnnxContract.InputName].Dimensions.Should().Equal(-1, 1, 28, 28);
            session.InputMetadata[OnnxContract.InputName].SymbolicDimensions[0].Should().Be(OnnxContract.BatchDimension);
            session.OutputMetadata[OnnxContract.LogitsName].Dimensions.Should().Equal(-1, 10);
            new FileInfo(path).Length.Should().Be(summary.Bytes);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Bad_options_and_unexportable_models_are_refused_with_their_names()
    {
        using var model = Trained("resnet18_dtskd", ModelStem.Cifar);
        var act = () => OnnxExport.ToBytes(model, new OnnxExportOptions { ImageSize = 28, Mean = [0.5, 0.5], Std = [0.5] });
        act.Should().Throw<ArgumentException>().WithMessage("*one value per input channel*");
        act = () => OnnxExport.ToBytes(model, new OnnxExportOptions { ImageSize = 28, Mean = [0.5], Std = [0.5], ClassNames = ["a", "b"] });
        act.Should().Throw<ArgumentException>().WithMessage("*ClassNames has 2 names; the model predicts 10 classes*");

        using var opaque = new MultiBranchNetwork(new OpaqueBackbone(), [16], 16, classCount: 2, neckWidth: 16);
        act = () => OnnxExport.ToBytes(opaque, Options(false));
        act.Should().Throw<NotSupportedException>().WithMessage("Cannot export 'backbone' (*OpaqueBackbone*)*Implement IBackboneGraph*");

        using var gelu = new MultiBranchNetwork(new DescribedBackbone(useGelu: true), [16], 16, classCount: 2, neckWidth: 16);
        act = () => OnnxExport.ToBytes(gelu, Options(false));
        act.Should().Throw<NotSupportedException>().WithMessage("Cannot export 'backbone.stem.2' (TorchSharp.Modules.GELU)*Supported: Conv2d*");
    }

    [Fact]
    public void A_user_backbone_that_describes_itself_exports_and_matches()
    {
        manual_seed(5);
        using var model = new MultiBranchNetwork(new DescribedBackbone(useGelu: false), [16], 16, classCount: 10, neckWidth: 16);
        model.eval();
        var (images, _) = Fashion(7);
        using var _ = images;
        using var output = model.call(images);
        var onnx = RunOnnx(OnnxExport.ToBytes(model, Options(fold: true, allHeads: true)), images);
        ShouldMatch(onnx[OnnxContract.LogitsName], Rows(output.Backbone), "user backbone");
        ShouldMatch(onnx[OnnxContract.BranchName(1)], Rows(output.Branches[0]), "user backbone's branch");
    }

    [Fact]
    public async Task An_exported_fashion_model_classifies_the_test_set_as_evaluate_does()
    {
        using var data = await StandardDatasets.LoadAsync(StandardDatasets.FashionMnist, trainLimit: 1000, testLimit: 1000);
        manual_seed(2);
        using var model = MultiBranchModels.Create("resnet18_dtskd", new MultiBranchModelOptions { ClassCount = 10, InputChannels = 1, BaseWidth = 16, NeckWidth = 32 });
        using (var trainer = new Trainer(model, CrossEntropyObjective.AllHeads(model), data.Train, data.Test, data.Preprocessing,
                   new TrainerOptions { Epochs = 4, BatchSize = 50, LearningRate = 0.05, Milestones = [], LogInterval = 100 }))
        {
            trainer.Run();
        }

        var evaluated = Evaluator.Evaluate(model, data.Test, data.Preprocessing);
        evaluated.Top1[0].Should().BeGreaterThan(50, "four epochs learn Fashion-MNIST well above chance (10%)");

        var (images, labels) = Fashion(1000);
        using var _ = images;
        var logits = RunOnnx(OnnxExport.ToBytes(model, Options(fold: true)), images)[OnnxContract.LogitsName];
        var correct = logits.Select((row, i) => Array.IndexOf(row, row.Max()) == labels[i]).Count(c => c);
        (100.0 * correct / 1000).Should().Be(evaluated.Top1[0], "ONNX Runtime classifies every test image as the TorchSharp model does");
    }

    /// <summary>A backbone the exporter cannot see into.</summary>
    private sealed class OpaqueBackbone : Module<Tensor, BackboneFeatures>
    {
        private readonly Sequential stem = Sequential(Conv2d(1, 16, 3, padding: 1), BatchNorm2d(16), ReLU());

        public OpaqueBackbone()
            : base(nameof(OpaqueBackbone)) => RegisterComponents();

        public override BackboneFeatures forward(Tensor input)
        {
            var x = stem.call(input);
            return new BackboneFeatures([x], functional.adaptive_avg_pool2d(x, 1));
        }
    }

    /// <summary>A backbone of standard layers that says what its forward computes.</summary>
    private sealed class DescribedBackbone : Module<Tensor, BackboneFeatures>, IBackboneGraph
    {
        private readonly Sequential stem;
        private readonly Sequential stage;

        public DescribedBackbone(bool useGelu)
            : base(nameof(DescribedBackbone))
        {
            stem = Sequential(Conv2d(1, 16, 3, padding: 1, bias: false), BatchNorm2d(16), useGelu ? GELU() : ReLU(), MaxPool2d(2));
            stage = Sequential(Conv2d(16, 16, 3, padding: 1, groups: 4), BatchNorm2d(16), ReLU(), Dropout(0.2), AvgPool2d([2, 2]));
            RegisterComponents();
        }

        public override BackboneFeatures forward(Tensor input)
        {
            var s = stem.call(input);
            var x = stage.call(s).add(functional.avg_pool2d(s, 2));
            return new BackboneFeatures([s], functional.adaptive_avg_pool2d(x, 1));
        }

        public (IReadOnlyList<GraphValue> Stages, GraphValue Feature) Describe(LayerGraph graph, GraphValue input)
        {
            var s = graph.Layer(stem, input, nameof(stem));
            var x = graph.Add(graph.Layer(stage, s, nameof(stage)), graph.AveragePool(s, (2, 2), (2, 2), (0, 0), ceilMode: false));
            return ([s], graph.GlobalAveragePool(x));
        }
    }
}
