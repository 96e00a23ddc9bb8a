namespace DTSKD.Core.Models;

/// <summary>Which release network's neck layout a <see cref="BranchNeck"/> follows.</summary>
internal enum NeckLayout
{
    /// <summary>The ResNets', VGG16's and ResNeXt18's: pooled laterals, K upsample steps.</summary>
    Standard,

    /// <summary>ShuffleNetV2's: laterals convolve before pooling, and the deepest upsample is <c>up_conv</c>.</summary>
    ShuffleNet,
}
