// Writes an ONNX file for every built-in network (CIFAR stem; ImageNet stem where there is one), plain and with
// BatchNorm folded and with every head, for eng/onnx-check.py to run the ONNX checker on. Run by hand from the
// repository root:
//   dotnet run eng/export-onnx-models.cs -- <folder>
#:project ../src/DTSKD.Core/DTSKD.Core.csproj
#:project ../src/DTSKD.Core.Onnx/DTSKD.Core.Onnx.csproj
#:package TorchSharp-cpu
#:property TreatWarningsAsErrors=false
#:property AnalysisLevel=none
#:property GenerateDocumentationFile=false
using DTSKD.Core.Models;
using DTSKD.Core.Onnx;
using static TorchSharp.torch;

var folder = Directory.CreateDirectory(args[0]).FullName;
foreach (var name in MultiBranchModels.Names)
{
    foreach (var stem in name == "vgg16_dtskd" ? new[] { ModelStem.Cifar } : [ModelStem.Cifar, ModelStem.ImageNet])
    {
        manual_seed(1);
        using var model = MultiBranchModels.Create(name, new MultiBranchModelOptions { ClassCount = 10, BaseWidth = 16, NeckWidth = 32, Stem = stem });
        model.eval();
        foreach (var (suffix, fold, heads) in new[] { ("", false, false), ("-folded", true, false), ("-all-heads", true, true) })
        {
            var path = Path.Combine(folder, $"{name}-{stem.ToString().ToLowerInvariant()}{suffix}.onnx");
            var summary = OnnxExport.Export(model, path, new OnnxExportOptions
            {
                ImageSize = stem == ModelStem.ImageNet ? 224 : 32, DecodeSize = stem == ModelStem.ImageNet ? 256 : null,
                Mean = [0.485, 0.456, 0.406], Std = [0.229, 0.224, 0.225], ClassNames = [.. Enumerable.Range(0, 10).Select(i => $"class {i}")],
                FoldBatchNorm = fold, AllHeads = heads,
            });
            Console.WriteLine($"{Path.GetFileName(path)}: {summary.Bytes:N0} bytes, outputs {string.Join(",", summary.Outputs)}, {summary.FoldedBatchNorms} folded");
        }
    }
}
