using System.Globalization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// A rough size of a training step's memory, to refuse a batch that cannot fit before training starts rather than after
/// the machine has started swapping: one forward pass of a single image counts what every layer outputs.
/// </summary>
internal static class StepMemory
{
    // Saved activations, their gradients, the functional operations' intermediates and the first step's gradient and
    // momentum buffers. Measured on this project's CPU (AMD EPYC, LibTorch 2.10): the first float32 step of the reference
    // resnet18_dtskd at batch 128 on 32x32 images raised the peak resident memory by 1,182 MB, 1.9 times the 637 MB its
    // layers output; later steps reuse LibTorch's cached blocks and add less.
    private const double StepFactor = 2;

    /// <summary>The bytes a layer-by-layer forward pass of one image outputs in <paramref name="inputType"/> (eval mode, no gradient: no state changes).</summary>
    public static long PerSampleBytes(IMultiBranchModel model, int channels, int height, int width, ScalarType? inputType)
    {
        long elements = 0;
        var hooks = model.modules()
            .Where(m => !m.children().Any())
            .OfType<nn.Module<Tensor, Tensor>>()
            .Select(m => m.register_forward_hook((_, _, output) =>
            {
                elements += output.numel();
                return output;
            }))
            .ToList();
        var wasTraining = model.training;
        try
        {
            model.eval();
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            // The model is still in the format it was built in; the step's format only changes the bytes per value.
            var first = model.parameters().FirstOrDefault();
            var input = zeros([1, channels, height, width], first?.dtype ?? ScalarType.Float32, first?.device ?? CPU);
            using var output = model.call(input);
        }
        finally
        {
            hooks.ForEach(h => h.remove());
            model.train(wasTraining);
        }

        var size = inputType is ScalarType.BFloat16 or ScalarType.Float16 ? 2 : inputType == ScalarType.Float64 ? 8 : 4;
        return elements * size;
    }

    /// <summary>The estimated peak of a training step of <paramref name="batchSize"/> images.</summary>
    public static long StepBytes(long perSampleBytes, int batchSize) => (long)(perSampleBytes * (double)batchSize * StepFactor);

    /// <summary>The memory the operating system can still hand out, for a CPU device on Linux; null where unknown.</summary>
    public static long? AvailableBytes(Device device)
    {
        if (device.type != TorchSharp.DeviceType.CPU || !OperatingSystem.IsLinux())
        {
            return null;
        }

        try
        {
            var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemAvailable:", StringComparison.Ordinal));
            var kb = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
            return kb is null ? null : long.Parse(kb, CultureInfo.InvariantCulture) * 1024;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    /// <summary>Gigabytes, for messages.</summary>
    public static string Gigabytes(long bytes) => (bytes / 1e9).ToString(bytes < 10e9 ? "F1" : "F0", CultureInfo.InvariantCulture) + " GB";
}
