using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>Puts a model's weights in a half format for the passes, keeping normalisation layers in float32.</summary>
internal static class MixedPrecision
{
    /// <summary>
    /// Converts the parameters and buffers of every leaf module except normalisation layers (BatchNorm, LayerNorm,
    /// GroupNorm, InstanceNorm: their parameters and running statistics stay float32, as autocast keeps them).
    /// </summary>
    public static void ConvertWeights(nn.Module model, ScalarType half)
    {
        foreach (var module in model.modules())
        {
            if (module.children().Any() || IsNormalisation(module))
            {
                continue;
            }

            module.to(half);
        }
    }

    private static bool IsNormalisation(nn.Module module) =>
        module is BatchNorm1d or BatchNorm2d or BatchNorm3d or LayerNorm or GroupNorm or InstanceNorm1d or InstanceNorm2d or InstanceNorm3d;
}
