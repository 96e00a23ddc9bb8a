using System.Globalization;
using DTSKD.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Benchmarks;

/// <summary>
/// Whether a memory layout computes the right gradients: one forward and backward pass of a multi-branch model in float32,
/// contiguous and channels-last, each compared with the same pass in float64 (LibTorch's float64 CPU kernels are its
/// plain reference ones, not oneDNN's).
/// </summary>
public static class LayoutGradients
{
    public static int Run(string modelName, int channels, int[] sides, int baseWidth, int batch)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"Machine: {MachineInfo.Describe(CPU)}");
        Console.WriteLine($"{modelName}, width {baseWidth}, {channels} input channels, batch {batch}; loss = sum of squared logits of every head.");
        Console.WriteLine("| image side | float32 contiguous vs float64 | float32 channels-last vs float64 | worst parameter (channels-last) |");
        Console.WriteLine("| --- | --- | --- | --- |");
        foreach (var side in sides)
        {
            manual_seed(1);
            using var model = MultiBranchModels.Create(modelName, new MultiBranchModelOptions { ClassCount = 10, InputChannels = channels, BaseWidth = baseWidth, NeckWidth = 4 * baseWidth });
            manual_seed(2);
            using var x = randn(batch, channels, side, side);
            var initial = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
            var contiguous = Gradients(model, initial, x, channelsLast: false);
            var channelsLast = Gradients(model, initial, x, channelsLast: true);
            model.to(ScalarType.Float64);
            using var x64 = x.to(ScalarType.Float64);
            var reference = Gradients(model, initial.ToDictionary(kv => kv.Key, kv => kv.Value.to(ScalarType.Float64)), x64, channelsLast: false);
            var (c, _) = Worst(contiguous, reference);
            var (l, name) = Worst(channelsLast, reference);
            Console.WriteLine(string.Create(inv, $"| {side} | {c:E1} | {l:E1} | {name} |"));
        }

        return 0;
    }

    /// <summary>The largest difference of any parameter's gradient from the reference's, relative to the reference's largest entry.</summary>
    private static (double Relative, string Name) Worst(Dictionary<string, Tensor> gradients, Dictionary<string, Tensor> reference) =>
        gradients.Select(kv =>
        {
            var r = reference[kv.Key];
            using var g = kv.Value.to(ScalarType.Float64);
            return ((g - r).abs().max().item<double>() / Math.Max(r.abs().max().item<double>(), 1e-30), kv.Key);
        }).MaxBy(t => t.Item1);

    private static Dictionary<string, Tensor> Gradients(MultiBranchModule model, Dictionary<string, Tensor> initial, Tensor x, bool channelsLast)
    {
        using var scope = NewDisposeScope();
        model.zero_grad();
        using (no_grad())
        {
            foreach (var (name, p) in model.named_parameters())
            {
                p.set_(channelsLast && p.dim() == 4 ? ChannelsLast(initial[name]) : initial[name].clone());
            }
        }

        using var output = model.call(channelsLast ? ChannelsLast(x) : x);
        output.Heads.Select(h => h.pow(2).sum()).Aggregate((a, b) => a.add(b)).backward();
        return model.named_parameters().Where(p => p.parameter.grad is not null)
            .ToDictionary(p => p.name, p => p.parameter.grad!.contiguous().clone().MoveToOuterDisposeScope());
    }

    private static Tensor ChannelsLast(Tensor t) => t.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
}
