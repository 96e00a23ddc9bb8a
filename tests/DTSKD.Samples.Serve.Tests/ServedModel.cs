using DTSKD.Core;
using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Onnx;
using DTSKD.Core.Training;
using SkiaSharp;
using DTSKD.Core.Deployment;
using static TorchSharp.torch;

namespace DTSKD.Samples.Serve.Tests;

/// <summary>
/// A resnet18_dtskd trained briefly on real Fashion-MNIST images, exported to ONNX, and test images written as PNG files
/// with the top-1 class TorchSharp gives them on the path the CIFAR sample's <c>predict</c> takes.
/// </summary>
public sealed class ServedModel : IDisposable
{
    /// <summary>The test classes that share the one trained model.</summary>
    public const string Collection = "served model";

    private const string FashionMnist = "/usr/share/datasets/fashion-mnist";

    public ServedModel()
    {
        Directory.Exists(FashionMnist).Should().BeTrue("CI installs Debian's dataset-fashion-mnist (see .ci/run)");
        Folder = Directory.CreateTempSubdirectory("dtskd-serve-").FullName;
        using var data = StandardDatasets.LoadAsync(StandardDatasets.FashionMnist, trainLimit: 1000, testLimit: 16).GetAwaiter().GetResult();
        manual_seed(3);
        using var model = MultiBranchModels.Create("resnet18_dtskd", new MultiBranchModelOptions { ClassCount = 10, InputChannels = 1, BaseWidth = 16, NeckWidth = 32 });
        using (var trainer = new Trainer(model, CrossEntropyObjective.AllHeads(model), data.Train, data.Test, data.Preprocessing,
                   new TrainerOptions { Epochs = 3, BatchSize = 50, LearningRate = 0.05, Milestones = [], LogInterval = 100 }))
        {
            trainer.Run();
        }

        model.eval();
        ClassNames = StandardDatasets.ClassNames(StandardDatasets.FashionMnist)!;
        ModelPath = Path.Combine(Folder, "fashion.onnx");
        OnnxExport.Export(model, ModelPath, new OnnxExportOptions
        {
            ImageSize = 28, Mean = data.Preprocessing.Mean, Std = data.Preprocessing.Std, ClassNames = ClassNames, FoldBatchNorm = true,
        });

        // The test images as files, and what TorchSharp says of them, decoded as predict decodes them.
        using var backbone = BackboneClassifier.From(model);
        using var reader = data.Test.OpenReader(CPU);
        using var order = arange(16, dtype: ScalarType.Int64);
        using var batch = reader.Read(order, 16).Single();
        var pixels = batch.Images.data<byte>().ToArray();
        for (var i = 0; i < 16; i++)
        {
            var path = Path.Combine(Folder, $"test{i}.png");
            using (var bitmap = new SKBitmap(new SKImageInfo(28, 28, SKColorType.Gray8, SKAlphaType.Opaque)))
            {
                pixels.AsSpan(i * 784, 784).CopyTo(bitmap.GetPixelSpan());
                using var image = SKImage.FromBitmap(bitmap);
                using var encoded = image.Encode(SKEncodedImageFormat.Png, 100);
                File.WriteAllBytes(path, encoded.ToArray());
            }

            var decoded = new byte[784];
            ImageDecoder.DecodeFile(path, 28, 1, decoded);
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var logits = backbone.call(data.Preprocessing.Prepare(tensor(decoded, [1, 1, 28, 28], ScalarType.Byte)));
            Images.Add((path, ClassNames[(int)logits.argmax(1).item<long>()]));
        }
    }

    public string Folder { get; }

    public string ModelPath { get; }

    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>Each test image's file and the class TorchSharp ranks first.</summary>
    public List<(string Path, string Top1)> Images { get; } = [];

    public void Dispose() => Directory.Delete(Folder, recursive: true);
}

/// <summary>One trained model for every class that serves it.</summary>
[CollectionDefinition(ServedModel.Collection)]
public sealed class ServedModelShared : ICollectionFixture<ServedModel>
{
}
