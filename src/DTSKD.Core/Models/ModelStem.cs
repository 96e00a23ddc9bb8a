namespace DTSKD.Core.Models;

/// <summary>The first layers of a network, by the images it is meant for.</summary>
public enum ModelStem
{
    /// <summary>The release's CIFAR stem: a 3x3 convolution of stride 1, so the first stage sees the full 32x32 image.</summary>
    Cifar,

    /// <summary>
    /// torchvision's ImageNet stem: a 7x7 convolution of stride 2 and a 3x3 max-pool of stride 2 (ResNets, ResNeXt), or a
    /// 3x3 convolution of stride 2 and the max-pool (ShuffleNetV2), so a 224x224 image reaches the first stage at 56x56.
    /// The ResNets' state-dict names do not change: their exported backbone loads into torchvision's resnet18 or resnet34
    /// with <c>strict=True</c>.
    /// </summary>
    ImageNet,
}
