namespace DTSKD.Core.Models;

/// <summary>
/// Size options of the built-in multi-branch models. The defaults build the reference architecture
/// exactly (CIFAR-100: 100 classes, RGB input, base width 64, the model's reference neck width); smaller widths
/// make quick CPU versions.
/// </summary>
public sealed class MultiBranchModelOptions
{
    /// <summary>The number of classes C.</summary>
    public int ClassCount { get; set; } = 100;

    /// <summary>Input image channels (3 for RGB, 1 for grayscale).</summary>
    public int InputChannels { get; set; } = 3;

    /// <summary>
    /// The network's width: 64 is the reference, and every channel count scales with it (the ResNets' stages have 1, 2, 4 and 8
    /// times it; VGG16's and ShuffleNetV2's channel lists scale by BaseWidth/64). Multiples of 16 keep CPU training exact
    /// (<c>docs/troubleshooting.md</c>).
    /// </summary>
    public int BaseWidth { get; set; } = 64;

    /// <summary>Channels of the branch neck; null (default) for the model's reference (512, or 1024 for ShuffleNetV2).</summary>
    public int? NeckWidth { get; set; }

    /// <summary>
    /// The first layers: <see cref="ModelStem.Cifar"/> (default, the release's) keeps the input's resolution, for 32-pixel
    /// images; <see cref="ModelStem.ImageNet"/> divides it by four first, for large images. VGG16 has no such stem and
    /// ignores it.
    /// </summary>
    public ModelStem Stem { get; set; } = ModelStem.Cifar;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first option out of range.</summary>
    public void Validate()
    {
        Check(ClassCount, 2, nameof(ClassCount));
        Check(InputChannels, 1, nameof(InputChannels));
        Check(BaseWidth, 1, nameof(BaseWidth));
        Check(NeckWidth ?? 1, 1, nameof(NeckWidth));
    }

    private static void Check(int value, int min, string name)
    {
        if (value < min)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be at least {min}.");
        }
    }
}
