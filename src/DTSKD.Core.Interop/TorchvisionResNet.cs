using System.Globalization;
using System.Text.RegularExpressions;
using DTSKD.Core.Models;
using static TorchSharp.torch;

namespace DTSKD.Core.Interop;

/// <summary>
/// Starts a DTSKD model from torchvision's ImageNet weights: a <c>resnet18</c> or <c>resnet34</c> state dict
/// (<c>torch.save</c>'s <c>.pth</c>/<c>.pt</c>, or <c>.safetensors</c>) loaded into <c>resnet18_dtskd</c>/<c>resnet34_dtskd</c>
/// with the ImageNet stem, whose backbone has torchvision's names. The backbone is loaded strictly; the classifier is
/// kept only when it already has the user's classes; the neck and branches are new.
/// </summary>
/// <remarks>
/// torchvision's weight files (<c>resnet18-f37072fd.pth</c>, <c>resnet34-b627a593.pth</c>) are the state dicts its
/// <c>ResNet18_Weights.IMAGENET1K_V1</c> downloads; <c>torch.save(torchvision.models.resnet18(weights="DEFAULT").state_dict(), path)</c>
/// writes the same. A state dict saved from <c>DataParallel</c> (names under <c>module.</c>) is accepted.
/// </remarks>
public static partial class TorchvisionResNet
{
    /// <summary>ImageNet's per-channel mean of [0, 1] pixels (red, green, blue), as torchvision normalises.</summary>
    public static IReadOnlyList<double> ImageNetMean { get; } = [0.485, 0.456, 0.406];

    /// <summary>ImageNet's per-channel standard deviation.</summary>
    public static IReadOnlyList<double> ImageNetStd { get; } = [0.229, 0.224, 0.225];

    private static readonly Dictionary<string, (string Model, int[] Blocks)> Layouts = new()
    {
        ["2,2,2,2"] = ("resnet18_dtskd", [2, 2, 2, 2]),
        ["3,4,6,3"] = ("resnet34_dtskd", [3, 4, 6, 3]),
    };

    /// <summary>
    /// Builds the multi-branch network for <paramref name="options"/>' classes and input channels around the file's backbone.
    /// The model (18 or 34 layers) and its width come from the file; <see cref="MultiBranchModelOptions.Stem"/> and
    /// <see cref="MultiBranchModelOptions.BaseWidth"/> are ignored. For gray images (<c>InputChannels = 1</c>) the RGB
    /// stem's weights are summed over its three channels: the gray channel enters as if replicated into red, green and
    /// blue, normalised with ImageNet's statistics averaged over the channels.
    /// </summary>
    /// <param name="path">A torchvision <c>resnet18</c>/<c>resnet34</c> state dict.</param>
    /// <param name="options">The user's classes, input channels and neck width.</param>
    /// <returns>The network, with what was loaded and initialised, its stages and the normalisation it expects.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a state dict, not a torchvision ResNet of 18 or 34 layers, or not the layout it claims; the message names the first mismatching tensors.</exception>
    public static PretrainedNetwork Load(string path, MultiBranchModelOptions options)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(options);
        if (Directory.Exists(path))
        {
            throw new InvalidDataException($"'{path}' is a folder, not a weights file.");
        }

        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Pretrained weights '{path}' do not exist.", path);
        }

        var file = Strip(PyTorchWeights.Read(path));
        try
        {
            var (name, width, fileChannels) = Identify(path, file);
            var built = new MultiBranchModelOptions
            {
                ClassCount = options.ClassCount, InputChannels = options.InputChannels, NeckWidth = options.NeckWidth, BaseWidth = width, Stem = ModelStem.ImageNet,
            };
            var model = MultiBranchModels.Create(name, built);
            try
            {
                return Fill(path, name, model, file, fileChannels, options);
            }
            catch
            {
                model.Dispose();
                throw;
            }
        }
        finally
        {
            foreach (var tensor in file.Values)
            {
                tensor.Dispose();
            }
        }
    }

    /// <summary>Which DTSKD network a torchvision file builds, without building it (to check a command line early).</summary>
    /// <param name="path">A torchvision <c>resnet18</c>/<c>resnet34</c> state dict.</param>
    /// <returns>The model name (<c>resnet18_dtskd</c> or <c>resnet34_dtskd</c>), its base width and the channels its stem takes.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a torchvision ResNet of 18 or 34 layers.</exception>
    public static (string Model, int BaseWidth, int InputChannels) Describe(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
        {
            throw new InvalidDataException($"'{path}' is a folder, not a weights file.");
        }

        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Pretrained weights '{path}' do not exist.", path);
        }

        var file = Strip(PyTorchWeights.Read(path));
        try
        {
            return Identify(path, file);
        }
        finally
        {
            foreach (var tensor in file.Values)
            {
                tensor.Dispose();
            }
        }
    }

    /// <summary>Whether a name belongs to the backbone torchvision and the DTSKD ResNets share.</summary>
    private static bool IsBackbone(string name) => name.StartsWith("conv1.", StringComparison.Ordinal) || name.StartsWith("bn1.", StringComparison.Ordinal) || LayerName().IsMatch(name);

    private static Dictionary<string, Tensor> Strip(Dictionary<string, Tensor> file) =>
        file.Count > 0 && file.Keys.All(k => k.StartsWith("module.", StringComparison.Ordinal))
            ? file.ToDictionary(kv => kv.Key["module.".Length..], kv => kv.Value, StringComparer.Ordinal)
            : file;

    private static (string Model, int Width, int Channels) Identify(string path, Dictionary<string, Tensor> file)
    {
        static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";
        var first = string.Join(", ", file.Take(3).Select(kv => $"{kv.Key} {Shape(kv.Value)}"));
        if (!file.TryGetValue("conv1.weight", out var stem) || !file.ContainsKey("layer1.0.conv1.weight"))
        {
            throw new InvalidDataException(
                $"'{path}' is not a torchvision ResNet state dict: it has no conv1.weight and layer1.0.conv1.weight (its first tensors: {(first.Length == 0 ? "none" : first)}).");
        }

        if (file.TryGetValue("layer1.0.conv3.weight", out var bottleneck))
        {
            throw new InvalidDataException(
                $"'{path}' is a torchvision ResNet of bottleneck blocks (resnet50 or larger: layer1.0.conv3.weight {Shape(bottleneck)}); DTSKD.Core's ResNets take resnet18 and resnet34 weights.");
        }

        if (stem.dim() != 4 || stem.shape[2] != 7 || stem.shape[3] != 7)
        {
            throw new InvalidDataException(
                $"'{path}': conv1.weight is {Shape(stem)}, not torchvision's 7x7 ImageNet stem [width, channels, 7, 7] (a CIFAR-stem network is loaded with PyTorchWeights.Load).");
        }

        var blocks = Enumerable.Range(1, 4)
            .Select(s => file.Keys.Select(k => BlockName().Match(k)).Where(m => m.Success && m.Groups[1].Value == s.ToString(CultureInfo.InvariantCulture))
                .Select(m => m.Groups[2].Value).Distinct().Count())
            .ToArray();
        return Layouts.TryGetValue(string.Join(",", blocks), out var layout)
            ? (layout.Model, (int)stem.shape[0], (int)stem.shape[1])
            : throw new InvalidDataException(
                $"'{path}' is a ResNet of [{string.Join(", ", blocks)}] basic blocks per stage; DTSKD.Core takes torchvision's resnet18 [2, 2, 2, 2] and resnet34 [3, 4, 6, 3].");
    }

    private static PretrainedNetwork Fill(string path, string name, MultiBranchModule model, Dictionary<string, Tensor> file, int fileChannels, MultiBranchModelOptions options)
    {
        static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";
        var target = model.state_dict();
        var gray = fileChannels == 3 && options.InputChannels == 1;
        if (fileChannels != options.InputChannels && !gray)
        {
            throw new InvalidDataException($"'{path}': conv1 takes {fileChannels}-channel images; these have {options.InputChannels} (gray images into an RGB network are supported).");
        }

        bool Fits(string key) => target.TryGetValue(key, out var t) && (t.shape.SequenceEqual(file[key].shape) || (gray && key == "conv1.weight"));
        var problems = target.Keys.Where(IsBackbone).Where(k => !file.ContainsKey(k)).Select(k => $"missing {k} {Shape(target[k])}")
            .Concat(file.Keys.Where(k => !k.StartsWith("fc.", StringComparison.Ordinal)).Where(k => !target.ContainsKey(k) || !IsBackbone(k)).Select(k => $"unexpected {k} {Shape(file[k])}"))
            .Concat(file.Keys.Where(k => IsBackbone(k) && target.ContainsKey(k) && !Fits(k)).Select(k => $"{k}: file {Shape(file[k])}, {name} {Shape(target[k])}"))
            .ToList();
        if (problems.Count > 0)
        {
            throw new InvalidDataException(
                $"'{path}' is not a torchvision {(name == "resnet18_dtskd" ? "resnet18" : "resnet34")} as its layout suggests ({problems.Count} differences; first: {string.Join("; ", problems.Take(4))}).");
        }

        var notes = new List<string>();
        var classifier = file.TryGetValue("fc.weight", out var fc) && file.TryGetValue("fc.bias", out var bias)
            && fc.shape.SequenceEqual(target["fc.weight"].shape) && bias.shape.SequenceEqual(target["fc.bias"].shape);
        if (!classifier && file.TryGetValue("fc.weight", out var dropped))
        {
            notes.Add($"The file's {dropped.shape[0]}-class classifier was left out: fc is new, for {options.ClassCount} classes.");
        }

        if (gray)
        {
            notes.Add("Gray images enter the RGB network as their channel replicated into red, green and blue (conv1's weights summed over them, the same computation), normalised with ImageNet's mean and standard deviation averaged over the channels (0.449, 0.226).");
        }

        var loaded = target.Keys.Where(k => IsBackbone(k) || (classifier && k.StartsWith("fc.", StringComparison.Ordinal))).ToList();
        using (no_grad())
        {
            foreach (var key in loaded)
            {
                var source = gray && key == "conv1.weight" ? file[key].sum(1, keepdim: true) : file[key].alias();
                using (source)
                using (var typed = source.to(target[key].dtype))
                {
                    target[key].copy_(typed);
                }
            }
        }

        var parameters = model.named_parameters().Select(p => p.name).ToList();
        IReadOnlyList<string> Under(params string[] prefixes) => [.. parameters.Where(p => prefixes.Any(x => p.StartsWith(x, StringComparison.Ordinal)))];
        var stages = new List<(string, IReadOnlyList<string>)> { ("stem", Under("conv1.", "bn1.")) };
        stages.AddRange(Enumerable.Range(1, 4).Select(s => ($"stage{s}", Under($"layer{s}."))));
        var mean = gray ? [Math.Round(ImageNetMean.Average(), 3)] : ImageNetMean;
        var std = gray ? [Math.Round(ImageNetStd.Average(), 3)] : ImageNetStd;
        return new PretrainedNetwork(model, Path.GetFullPath(path), loaded, [.. target.Keys.Except(loaded)], stages, mean, std, notes) { MinimumImageSize = 32 };
    }

    [GeneratedRegex(@"^layer[1-4]\.")]
    private static partial Regex LayerName();

    [GeneratedRegex(@"^layer([1-4])\.(\d+)\.")]
    private static partial Regex BlockName();
}
