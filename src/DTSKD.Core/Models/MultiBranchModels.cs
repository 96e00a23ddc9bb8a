using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core.Models;

/// <summary>
/// The built-in multi-branch networks: TorchSharp-style factories named after the reference release's
/// <c>--classifier_type</c> values, and a registry that builds them by name (for command lines).
/// </summary>
/// <remarks>Seed TorchSharp's generator (<c>torch.manual_seed</c>) before building a model to fix its initialisation.</remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1707", Justification = "Factories carry the reference release's model names, as TorchSharp's torchvision.models.resnet18 does.")]
public static class MultiBranchModels
{
    private static readonly Dictionary<string, Func<MultiBranchModelOptions, MultiBranchModule>> Factories = new(StringComparer.OrdinalIgnoreCase)
    {
        ["resnet18_dtskd"] = ResNetDtskd.ResNet18,
        ["resnet34_dtskd"] = ResNetDtskd.ResNet34,
        ["vgg16_dtskd"] = o => new VggDtskd(o),
        ["resnext18_dtskd"] = o => new ResNeXtDtskd(o),
        ["shufflev2_dtskd"] = o => new ShuffleNetV2Dtskd(o),
    };

    // Other spellings of the release's names that users write.
    private static readonly Dictionary<string, string> Aliases = new(StringComparer.OrdinalIgnoreCase)
    {
        ["shufflenetv2_dtskd"] = "shufflev2_dtskd",
    };

    /// <summary>The known names, in a stable order (the release's <c>--classifier_type</c> values; <c>shufflenetv2_dtskd</c> is accepted too).</summary>
    public static IReadOnlyList<string> Names { get; } = [.. Factories.Keys.Order(StringComparer.Ordinal)];

    /// <summary>Whether a name (or an alias of one) is known, case-insensitively.</summary>
    /// <param name="name">The name.</param>
    public static bool IsKnown(string name) => name is not null && (Factories.ContainsKey(name) || Aliases.ContainsKey(name));

    /// <summary>Builds a model by name (case-insensitive).</summary>
    /// <param name="name">One of <see cref="Names"/>, for example <c>resnet18_dtskd</c>.</param>
    /// <param name="options">Size options; null for the reference (CIFAR-100). Validated here.</param>
    /// <exception cref="ArgumentException">The name is unknown; the message lists the known names.</exception>
    public static MultiBranchModule Create(string name, MultiBranchModelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!Factories.TryGetValue(Aliases.GetValueOrDefault(name, name), out var factory))
        {
            throw new ArgumentException($"Unknown model '{name}'. Known models: {string.Join(", ", Names)}.", nameof(name));
        }

        options ??= new MultiBranchModelOptions();
        options.Validate();
        return factory(options);
    }

    /// <summary><c>resnet18_dtskd</c>: a CIFAR ResNet-18 with three branches; 13,971,920 parameters at 100 classes.</summary>
    /// <param name="numClasses">C, the number of classes.</param>
    /// <param name="inputChannels">Image channels (3 for RGB, 1 for grayscale).</param>
    /// <param name="baseWidth">Channels of the first stage (64 is the reference).</param>
    /// <param name="neckWidth">Channels of the branch neck (512 is the reference).</param>
    /// <param name="device">Where to put the model (default: CPU).</param>
    /// <param name="stem">The first layers: the release's CIFAR stem, or the ImageNet one for large images (see <see cref="ModelStem"/>).</param>
    public static MultiBranchModule resnet18_dtskd(int numClasses = 100, int inputChannels = 3, int baseWidth = 64, int neckWidth = 512, Device? device = null, ModelStem stem = ModelStem.Cifar) =>
        Build("resnet18_dtskd", numClasses, inputChannels, baseWidth, neckWidth, device, stem);

    /// <summary><c>resnet34_dtskd</c>: a CIFAR ResNet-34 with three branches; 24,080,080 parameters at 100 classes.</summary>
    /// <param name="numClasses">C, the number of classes.</param>
    /// <param name="inputChannels">Image channels (3 for RGB, 1 for grayscale).</param>
    /// <param name="baseWidth">Channels of the first stage (64 is the reference).</param>
    /// <param name="neckWidth">Channels of the branch neck (512 is the reference).</param>
    /// <param name="device">Where to put the model (default: CPU).</param>
    /// <param name="stem">The first layers: the release's CIFAR stem, or the ImageNet one for large images (see <see cref="ModelStem"/>).</param>
    public static MultiBranchModule resnet34_dtskd(int numClasses = 100, int inputChannels = 3, int baseWidth = 64, int neckWidth = 512, Device? device = null, ModelStem stem = ModelStem.Cifar) =>
        Build("resnet34_dtskd", numClasses, inputChannels, baseWidth, neckWidth, device, stem);

    /// <summary><c>vgg16_dtskd</c>: a CIFAR VGG16 with BatchNorm and three branches; the release's initialisation.</summary>
    /// <param name="numClasses">C, the number of classes.</param>
    /// <param name="inputChannels">Image channels (3 for RGB, 1 for grayscale).</param>
    /// <param name="baseWidth">The width: every channel count scales by baseWidth/64 (64 is the reference).</param>
    /// <param name="neckWidth">Channels of the branch neck (512 is the reference).</param>
    /// <param name="device">Where to put the model (default: CPU).</param>
    public static MultiBranchModule vgg16_dtskd(int numClasses = 100, int inputChannels = 3, int baseWidth = 64, int neckWidth = 512, Device? device = null) =>
        Build("vgg16_dtskd", numClasses, inputChannels, baseWidth, neckWidth, device, ModelStem.Cifar);

    /// <summary><c>resnext18_dtskd</c>: the release's widened CIFAR ResNet-18 blocks with three branches; the release's initialisation.</summary>
    /// <param name="numClasses">C, the number of classes.</param>
    /// <param name="inputChannels">Image channels (3 for RGB, 1 for grayscale).</param>
    /// <param name="baseWidth">Channels of the first stage (64 is the reference).</param>
    /// <param name="neckWidth">Channels of the branch neck (512 is the reference).</param>
    /// <param name="device">Where to put the model (default: CPU).</param>
    /// <param name="stem">The first layers: the release's CIFAR stem, or the ImageNet one for large images (see <see cref="ModelStem"/>).</param>
    public static MultiBranchModule resnext18_dtskd(int numClasses = 100, int inputChannels = 3, int baseWidth = 64, int neckWidth = 512, Device? device = null, ModelStem stem = ModelStem.Cifar) =>
        Build("resnext18_dtskd", numClasses, inputChannels, baseWidth, neckWidth, device, stem);

    /// <summary><c>shufflev2_dtskd</c>: ShuffleNetV2 (ratio 1) with the release's ShuffleNet neck and three branches.</summary>
    /// <param name="numClasses">C, the number of classes.</param>
    /// <param name="inputChannels">Image channels (3 for RGB, 1 for grayscale).</param>
    /// <param name="baseWidth">The width: every channel count scales by baseWidth/64 (64 is the reference).</param>
    /// <param name="neckWidth">Channels of the branch neck (1024 is the reference).</param>
    /// <param name="device">Where to put the model (default: CPU).</param>
    /// <param name="stem">The first layers: the release's CIFAR stem, or the ImageNet one for large images (see <see cref="ModelStem"/>).</param>
    public static MultiBranchModule shufflev2_dtskd(int numClasses = 100, int inputChannels = 3, int baseWidth = 64, int neckWidth = 1024, Device? device = null, ModelStem stem = ModelStem.Cifar) =>
        Build("shufflev2_dtskd", numClasses, inputChannels, baseWidth, neckWidth, device, stem);

    private static MultiBranchModule Build(string name, int classes, int channels, int baseWidth, int neckWidth, Device? device, ModelStem stem)
    {
        var model = Create(name, new MultiBranchModelOptions { ClassCount = classes, InputChannels = channels, BaseWidth = baseWidth, NeckWidth = neckWidth, Stem = stem });
        return device is null ? model : model.to(device);
    }
}
