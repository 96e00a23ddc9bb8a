using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// How a batch enters the model: in the weights' number format and, for measurements, in channels-last memory order (the
/// convolutions, batch norms and pooling layers then keep that order through the network).
/// </summary>
/// <remarks>
/// Channels-last is off in every run: on LibTorch 2.10's CPU kernels it made a float32 step 17% faster and a bfloat16 step
/// no faster, and its gradients of a whole resnet18_dtskd differed from float64's by up to 10% where the contiguous
/// layout's agree to 5e-6 (docs/benchmarks.md). It stays for the benchmarks to measure, and for a GPU measurement.
/// </remarks>
/// <param name="Type">The weights' format, or null for float32.</param>
/// <param name="ChannelsLast">Whether 4-D batches are laid out channels-last.</param>
internal sealed record InputFormat(ScalarType? Type, bool ChannelsLast)
{
    /// <summary>Float32, contiguous: the input as it comes.</summary>
    public static InputFormat Float32 { get; } = new(null, false);

    /// <summary>The batch in this format (a new tensor when anything changes).</summary>
    public Tensor Apply(Tensor images)
    {
        var x = images;
        if (ChannelsLast && x.dim() == 4 && !IsChannelsLast(x))
        {
            // N, H, W, C in memory, seen as N, C, H, W: what channels_last means in LibTorch.
            x = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        }

        return Type is { } type && x.dtype != type ? x.to(type) : x;
    }

    /// <summary>Whether a 4-D tensor is laid out channels-last (channels innermost).</summary>
    public static bool IsChannelsLast(Tensor x)
    {
        if (x.dim() != 4)
        {
            return false;
        }

        var (shape, stride) = (x.shape, x.stride());
        return stride[1] == 1 && stride[3] == shape[1] && stride[2] == shape[1] * shape[3] && stride[0] == shape[1] * shape[2] * shape[3];
    }
}
