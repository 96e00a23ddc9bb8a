using static TorchSharp.torch;

namespace DTSKD.Core.Data;

/// <summary>Scaling to [0, 1] and per-channel normalisation, <c>(x / 255 − mean) / std</c>, as one multiply-add per channel.</summary>
internal static class PixelNormalization
{
    /// <summary>Normalises uint8 (or float32, in pixel units 0..255) images [B, C, H, W] into a new float32 tensor the caller owns.</summary>
    public static Tensor Apply(Tensor images, IReadOnlyList<double> mean, IReadOnlyList<double> std)
    {
        using var scope = NewDisposeScope();
        var scale = tensor(std.Select(s => (float)(1.0 / (255.0 * s))).ToArray(), [1, std.Count, 1, 1]).to(images.device);
        var shift = tensor(mean.Select((m, i) => (float)(-m / std[i])).ToArray(), [1, std.Count, 1, 1]).to(images.device);
        return images.to(ScalarType.Float32).mul(scale).add(shift).MoveToOuterDisposeScope();
    }

    /// <summary>Throws unless mean and std hold one finite value per channel, std values &gt; 0.</summary>
    public static void Validate(IReadOnlyList<double> mean, IReadOnlyList<double> std)
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(std);
        if (mean.Count == 0 || mean.Count != std.Count)
        {
            throw new ArgumentException($"mean and std must have one value per channel and the same length; got {mean.Count} and {std.Count}.", nameof(std));
        }

        if (std.Any(s => !(s > 0) || double.IsInfinity(s)) || mean.Any(m => !double.IsFinite(m)))
        {
            throw new ArgumentException("std values must be finite and > 0, mean values finite.", nameof(std));
        }
    }
}
