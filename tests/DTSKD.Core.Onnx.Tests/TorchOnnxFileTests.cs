using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Onnx.Import;
using DTSKD.Core.Training;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using DTSKD.Core.Deployment;
using F = TorchSharp.torch.nn.functional;
using Tensor = TorchSharp.torch.Tensor;

namespace DTSKD.Core.Onnx.Tests;

/// <summary>
/// Files torch.onnx 1.13 wrote from torchvision's classifiers at narrow widths and from a network of the remaining
/// operators (eng/make-torchvision-onnx-fixtures.py): batch norms folded (eval) and kept (training mode), opsets 11 and
/// 17, initializers listed as inputs. Each imports with no options, computes what ONNX Runtime computes, fine-tunes and
/// exports again.
/// </summary>
public sealed class TorchOnnxFileTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "TestData", "torchvision", name);

    /// <summary>Every file with its reference (the eval twin of a training-mode file, else itself) and input side.</summary>
    public static TheoryData<string, string, int> Files => new()
    {
        { "mobilenet_v3-opset11-eval.onnx", "mobilenet_v3-opset11-eval.onnx", 64 },
        { "mobilenet_v3-opset11-train.onnx", "mobilenet_v3-opset11-eval.onnx", 64 },
        { "shufflenet_v2-opset17-eval.onnx", "shufflenet_v2-opset17-eval.onnx", 64 },
        { "shufflenet_v2-opset17-train.onnx", "shufflenet_v2-opset17-eval.onnx", 64 },
        { "convnext-opset11-eval.onnx", "convnext-opset11-eval.onnx", 64 },
        { "convnext-opset17-eval.onnx", "convnext-opset17-eval.onnx", 64 },
        { "squeezenet-opset11-eval.onnx", "squeezenet-opset11-eval.onnx", 64 },
        { "mnasnet-opset17-eval.onnx", "mnasnet-opset17-eval.onnx", 64 },
        { "mnasnet-opset17-train.onnx", "mnasnet-opset17-eval.onnx", 64 },
        { "vgg-opset17-eval.onnx", "vgg-opset17-eval.onnx", 32 },
        { "operators-opset11-eval.onnx", "operators-opset11-eval.onnx", 30 },
        { "operators-opset11-train.onnx", "operators-opset11-eval.onnx", 30 },
        { "operators-opset17-eval.onnx", "operators-opset17-eval.onnx", 30 },
        { "operators-opset17-train.onnx", "operators-opset17-eval.onnx", 30 },
        { "gelu-opset20.onnx", "gelu-opset20.onnx", 16 },
    };

    /// <summary>Real Fashion-MNIST images at the side, gray into RGB, normalised as ImageNet's networks expect; and their uint8 pixels and labels.</summary>
    private static (Tensor Images, Tensor Pixels, Tensor Labels) Fashion(int count, int side, int offset = 0)
    {
        using var data = StandardDatasets.LoadAsync(StandardDatasets.FashionMnist, trainLimit: offset + count, testLimit: 1).GetAwaiter().GetResult();
        var train = (ImageDataset)data.Train;
        using var scope = NewDisposeScope();
        var raw = train.Images.narrow(0, offset, count).to(ScalarType.Float32);
        var pixels = F.interpolate(raw, [side, side], mode: InterpolationMode.Bilinear, align_corners: false).expand(-1, 3, -1, -1).round().clamp(0, 255).to(ScalarType.Byte).contiguous();
        var images = pixels.to(ScalarType.Float32).div(255).sub(tensor(new[] { 0.485f, 0.456f, 0.406f }).reshape(1, 3, 1, 1)).div(tensor(new[] { 0.229f, 0.224f, 0.225f }).reshape(1, 3, 1, 1));
        return (images.contiguous().MoveToOuterDisposeScope(), pixels.MoveToOuterDisposeScope(), train.Labels.narrow(0, offset, count).clone().MoveToOuterDisposeScope());
    }

    /// <summary>ONNX Runtime's first output for each image, one at a time (the files fix the batch at 1), as [images, outputs].</summary>
    private static float[][] Runtime(byte[] model, Tensor images)
    {
        using var session = new InferenceSession(model);
        var name = session.InputMetadata.Keys.First();
        var rows = new List<float[]>();
        for (var i = 0; i < images.shape[0]; i++)
        {
            using var one = images.narrow(0, i, 1).contiguous();
            using var results = session.Run([NamedOnnxValue.CreateFromTensor(name, new DenseTensor<float>(one.data<float>().ToArray(), [.. one.shape.Select(d => (int)d)]))]);
            rows.Add([.. results[0].AsEnumerable<float>()]);
        }

        return [.. rows];
    }

    /// <summary>The largest difference, relative to each row's largest value.</summary>
    private static double Gap(Tensor ours, float[][] theirs)
    {
        var flat = ours.detach().flatten(1).contiguous().data<float>().ToArray();
        var width = flat.Length / theirs.Length;
        return theirs.Select((row, r) => row.Select((v, j) => Math.Abs(v - flat[(r * width) + j])).Max() / row.Max(Math.Abs)).Max();
    }

    private static string GraphOutput(string path) => global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(path)).Graph.Output[0].Name;

    [Theory]
    [MemberData(nameof(Files))]
    public void Each_file_imports_with_no_options_and_computes_what_onnx_runtime_computes(string file, string reference, int side)
    {
        var path = Fixture(file);
        var (backbone, _) = OnnxImport.LoadBackbone(path, new OnnxImportOptions { FeaturePoint = GraphOutput(path) });
        using (backbone)
        {
            backbone.eval();
            var (images, pixels, labels) = Fashion(4, side);
            using (images)
            using (pixels)
            using (labels)
            using (no_grad())
            using (var scope = NewDisposeScope())
            {
                // The four images at once: the files were exported for one.
                var ours = backbone.call(images).Feature;
                Gap(ours, Runtime(File.ReadAllBytes(Fixture(reference)), images)).Should().BeLessThan(1e-4, $"{file} against ONNX Runtime on {reference}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Each_file_fine_tunes_every_stage_and_exports_again_as_torch_sharp_computes(string file, string reference, int side)
    {
        _ = reference;
        var network = OnnxImport.Load(Fixture(file), new MultiBranchModelOptions { ClassCount = 10, NeckWidth = 32 });
        using var model = network.Model;
        var (images, pixels, labels) = Fashion(32, side);
        using (images)
        using (pixels)
        using (labels)
        {
            using var data = ImageDataset.FromTensors(pixels, labels, 10);
            var before = model.state_dict().Where(p => p.Key.StartsWith("backbone.", StringComparison.Ordinal) && p.Value.is_floating_point()).ToDictionary(p => p.Key, p => p.Value.clone());
            var options = TrainerOptions.FineTuningRecipe(1);
            (options.BatchSize, options.EvalBatchSize, options.FineTuning, options.LearningRate) = (8, 16, FineTuning.For(network), 0.05);
            options.FineTuning.WarmupEpochs = 0;
            using (var loss = DualTeacherLoss.For(model, data.Count))
            using (var trainer = new Trainer(model, loss, data, data, new PadCropFlip(network.Mean, network.Std, padding: side / 8), options))
            {
                trainer.Run().Metrics.Should().ContainSingle().Which.TrainLoss.Should().BeGreaterThan(0);
            }

            // Every stage's weights moved: the gradients reached them through every operator.
            foreach (var (stage, parameters) in network.Stages.Where(s => s.Parameters.Count > 0))
            {
                parameters.Should().Contain(p => !model.state_dict()[p].allclose(before[p], 0, 0), $"{file}: stage {stage} trains");
            }

            model.eval();
            var exported = OnnxExport.ToBytes(model, new OnnxExportOptions { ImageSize = side, Mean = network.Mean, Std = network.Std, AllHeads = true });
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var heads = model.call(images);
            using var session = new InferenceSession(exported);
            var input = new DenseTensor<float>(images.data<float>().ToArray(), [.. images.shape.Select(d => (int)d)]);
            using var results = session.Run([NamedOnnxValue.CreateFromTensor(OnnxContract.InputName, input)]);
            results.Should().HaveCount(model.BranchCount + 1);
            foreach (var (onnx, torch) in results.Zip(heads.Heads))
            {
                var t = onnx.AsTensor<float>();
                var rows = Enumerable.Range(0, t.Dimensions[0]).Select(r => Enumerable.Range(0, t.Dimensions[1]).Select(j => t[r, j]).ToArray()).ToArray();
                Gap(torch, rows).Should().BeLessThan(1e-4, $"{file}: head {onnx.Name} exported");
            }
        }
    }

    [Fact]
    public void An_import_inside_a_caller_s_dispose_scope_keeps_its_weights_when_the_scope_ends()
    {
        // ConvNeXt's nodes read constants (a layer scale as a parameter, scalars as buffers) besides their layers' weights.
        OnnxBackbone backbone;
        using (NewDisposeScope())
        {
            backbone = OnnxImport.LoadBackbone(Fixture("convnext-opset11-eval.onnx")).Backbone;
        }

        using (backbone)
        {
            backbone.eval();
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            backbone.call(randn(2, 3, 64, 64)).Feature.isfinite().all().item<bool>().Should().BeTrue();
            backbone.parameters().Concat(backbone.buffers()).Should().OnlyContain(t => !t.IsInvalid, "every weight and constant outlives the scope the import ran in");
        }
    }

    [Fact]
    public void A_network_that_pools_to_shrink_gets_its_branches_at_the_pools_and_its_convolution_classifier_left_out()
    {
        var network = OnnxImport.Load(Fixture("squeezenet-opset11-eval.onnx"), new MultiBranchModelOptions { ClassCount = 10, NeckWidth = 32 });
        using var model = network.Model;
        var backbone = (OnnxBackbone)model.named_children().Single(c => c.name == "backbone").module;
        model.BranchCount.Should().Be(3);
        backbone.PoolsFeature.Should().BeTrue();
        network.Notes.Should().Contain(n => n.StartsWith("The file's classifier (the 1x1 convolution", StringComparison.Ordinal))
            .And.Contain(n => n.StartsWith("Branches at the ends of the last 3 stages before the feature:", StringComparison.Ordinal))
            .And.Contain(n => n.StartsWith("The file has no batch norms", StringComparison.Ordinal));
        using var scope = NewDisposeScope();
        var output = backbone.call(zeros(1, 3, 64, 64));
        output.Stages.Select(s => s.shape[2]).Should().Equal([31, 15, 7], "each branch sits on the map before a max pool halves it");
        output.Feature.shape.Should().Equal(1, 32, 1, 1);
    }

    [Fact]
    public void Shapes_computed_from_the_image_run_at_run_time_so_any_batch_and_size_work()
    {
        var (backbone, notes) = OnnxImport.LoadBackbone(Fixture("shufflenet_v2-opset17-train.onnx"));
        using (backbone)
        {
            notes.Should().Contain(n => n.Contains("fixed [1, 2, ", StringComparison.Ordinal) && n.EndsWith("it takes the batch and its last 2 sizes from its input.", StringComparison.Ordinal));
            backbone.eval();
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var images = randn(5, 3, 96, 96, generator: new Generator(3));
            var together = backbone.call(images).Feature;
            var apart = cat([.. Enumerable.Range(0, 5).Select(i => backbone.call(images.narrow(0, i, 1)).Feature)], 0);
            together.allclose(apart, 1e-5, 1e-5).Should().BeTrue("a batch of five at 96 pixels is five images of one");
        }

        OnnxImport.Load(Fixture("shufflenet_v2-opset17-train.onnx"), new MultiBranchModelOptions { ClassCount = 2 }).RequiredImageSize.Should().BeNull();
    }

    [Fact]
    public void Branch_points_follow_the_count_asked_for_and_given_points_are_checked()
    {
        var file = Fixture("mobilenet_v3-opset11-train.onnx");
        foreach (var count in new[] { 1, 2, 4 })
        {
            var network = OnnxImport.Load(file, new MultiBranchModelOptions { ClassCount = 3, NeckWidth = 16 }, new OnnxImportOptions { BranchCount = count });
            using var model = network.Model;
            model.BranchCount.Should().Be(count);
            using var loss = DualTeacherLoss.For(model, 8);
            using var scope = NewDisposeScope();
            loss.Compute(model.call(randn(2, 3, 64, 64)), tensor(new long[] { 0, 1 }), tensor(new long[] { 0, 1 }), 0, 1).Total.item<float>().Should().BeGreaterThan(0);
        }

        var many = OnnxImport.Load(file, new MultiBranchModelOptions { ClassCount = 3, NeckWidth = 16 }, new OnnxImportOptions { BranchCount = 9 });
        using (many.Model)
        {
            many.Model.BranchCount.Should().Be(5, "the map shrinks five times before the feature at 64 pixels");
            many.Notes.Should().Contain(n => n.StartsWith("The network's map shrinks 5 times before its feature: 5 branches, not 9", StringComparison.Ordinal));
        }

        var (found, _) = OnnxImport.LoadBackbone(file);
        var points = found.BranchPoints.ToArray();
        found.Dispose();
        string Refusal(string[] given) => ((Action)(() => OnnxImport.LoadBackbone(file, new OnnxImportOptions { BranchPoints = given }).Backbone.Dispose()))
            .Should().Throw<InvalidDataException>().Which.Message;
        Refusal([points[1], points[0]]).Should().Contain($"branch point '{points[0]}' comes before '{points[1]}' in the graph; give the branch points shallowest first");
        Refusal([points[0], points[0]]).Should().Contain($"branch point '{points[0]}' is given twice");
        var one = OnnxImport.Load(file, new MultiBranchModelOptions { ClassCount = 3, NeckWidth = 16 }, new OnnxImportOptions { BranchPoints = [points[1]] });
        using (one.Model)
        {
            one.Model.BranchCount.Should().Be(1);
        }
    }

    [Fact]
    public void Batch_norms_kept_by_a_training_mode_export_train_and_folded_ones_are_noted()
    {
        var kept = OnnxImport.Load(Fixture("mobilenet_v3-opset11-train.onnx"), new MultiBranchModelOptions { ClassCount = 3, NeckWidth = 16 });
        var folded = OnnxImport.Load(Fixture("mobilenet_v3-opset11-eval.onnx"), new MultiBranchModelOptions { ClassCount = 3, NeckWidth = 16 });
        using (kept.Model)
        using (folded.Model)
        {
            kept.Model.modules().OfType<TorchSharp.Modules.BatchNorm2d>().Count().Should().BeGreaterThan(10);
            kept.Notes.Should().Contain(n => n.StartsWith("The file's batch norms were exported in training mode", StringComparison.Ordinal));
            folded.Notes.Should().Contain(n => n.StartsWith("The file has no batch norms: the network has none, or an eval-mode export folded them into its convolutions", StringComparison.Ordinal));
            folded.Model.named_buffers().Where(b => b.name.StartsWith("backbone.", StringComparison.Ordinal) && b.name.Contains("running_mean", StringComparison.Ordinal)).Should().BeEmpty();
        }
    }

    [Fact]
    public void Half_precision_trains_an_imported_network_whose_nodes_apply_their_own_weights()
    {
        // ConvNeXt applies weights outside its layers (the layer scale, the decomposed layer norm's scale and shift).
        var network = OnnxImport.Load(Fixture("convnext-opset11-eval.onnx"), new MultiBranchModelOptions { ClassCount = 10, NeckWidth = 32 });
        using var model = network.Model;
        model.named_parameters().Should().Contain(p => p.name.StartsWith("backbone.", StringComparison.Ordinal) && p.name.EndsWith("_weight", StringComparison.Ordinal));
        var (images, pixels, labels) = Fashion(16, 64);
        using (images)
        using (pixels)
        using (labels)
        {
            using var data = ImageDataset.FromTensors(pixels, labels, 10);
            var options = TrainerOptions.FineTuningRecipe(1);
            (options.BatchSize, options.EvalBatchSize, options.FineTuning, options.Precision) = (8, 16, FineTuning.For(network), TrainingPrecision.BFloat16);
            using var loss = DualTeacherLoss.For(model, data.Count);
            using var trainer = new Trainer(model, loss, data, data, new PadCropFlip(network.Mean, network.Std, padding: 8), options);
            double.IsFinite(trainer.Run().Metrics.Single().TrainLoss).Should().BeTrue();
        }
    }
}
