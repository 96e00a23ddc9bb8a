// Writes what eng/torchvision-stem-check.py compares with torchvision: the exported plain classifier of resnet18_dtskd and
// resnet34_dtskd with the ImageNet stem (reference width, 10 classes, random weights with BatchNorm statistics that are not
// the defaults), and its TorchSharp logits on a fixed batch of 224x224 images. Run by hand from the repository root:
//   dotnet run eng/export-for-torchvision.cs -- <folder>
#:project ../src/DTSKD.Core/DTSKD.Core.csproj
#:project ../src/DTSKD.Core.Interop/DTSKD.Core.Interop.csproj
#:package TorchSharp-cpu
#:property TreatWarningsAsErrors=false
#:property AnalysisLevel=none
#:property GenerateDocumentationFile=false
using DTSKD.Core.Interop;
using DTSKD.Core.Models;
using static TorchSharp.torch;

var folder = Directory.CreateDirectory(args[0]).FullName;
foreach (var name in new[] { "resnet18_dtskd", "resnet34_dtskd" })
{
    manual_seed(5);
    using var model = MultiBranchModels.Create(name, new MultiBranchModelOptions { ClassCount = 10, Stem = ModelStem.ImageNet });

    // A few training steps' worth of BatchNorm statistics, so eval mode differs from the initial identity.
    model.train();
    using (no_grad())
    {
        for (var i = 0; i < 3; i++)
        {
            using var scope = NewDisposeScope();
            using var warm = model.call(randn(4, 3, 224, 224));
        }
    }

    model.eval();
    using var classifier = BackboneClassifier.From(model);
    PyTorchWeights.Save(classifier, Path.Combine(folder, $"{name}-imagenet-stem.pt"));
    manual_seed(6);
    using var input = randn(2, 3, 224, 224);
    using var logits = classifier.call(input);
    File.WriteAllText(Path.Combine(folder, $"{name}-logits.txt"), string.Join(" ", logits.data<float>().ToArray().Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture))));
    using var holder = new InputHolder(input);
    PyTorchWeights.Save(holder, Path.Combine(folder, $"{name}-input.pt"));
    Console.WriteLine($"{name}: wrote {folder}");
}

/// <summary>A module that holds one tensor, to write it in torch.save's format for Python.</summary>
sealed class InputHolder : TorchSharp.torch.nn.Module
{
    public InputHolder(Tensor input) : base("input") => register_buffer("input", input.clone());
}
