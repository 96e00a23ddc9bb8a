using System.Text;
using TorchSharp.Modules;

namespace DTSKD.Core.Tests;

/// <summary>
/// The initial weights the golden files were made with, computed from a formula on both sides (the Python twin is
/// <c>eng/release-reference.py</c>): element i of the parameter called <c>name</c> gets
/// <c>u = splitmix64(fnv1a(name) + (i + 1) · 0x9E3779B97F4A7C15) / 2^53</c>, then (2u − 1)/√fan_in for weights of two or
/// more dimensions, 1 + 0.1(2u − 1) for 1-D weights and 0.1(2u − 1) for biases. Exact in float64.
/// </summary>
internal static class ReferenceWeights
{
    /// <summary>The formula's values for every parameter (the training-trajectory golden file).</summary>
    public static void Apply(IMultiBranchModel model)
    {
        using var noGrad = no_grad();
        foreach (var (name, parameter) in model.named_parameters())
        {
            using var values = Values(name, parameter.shape);
            parameter.copy_(values);
        }
    }

    /// <summary>The formula's values for every parameter and BatchNorm statistic (the logits golden file).</summary>
    public static void ApplyWithStatistics(IMultiBranchModel model)
    {
        using var noGrad = no_grad();
        foreach (var (name, state) in model.state_dict().Where(kv => kv.Value.is_floating_point()))
        {
            using var values = Values(name, state.shape);
            state.copy_(values);
        }
    }

    public static Tensor Values(string name, long[] shape)
    {
        var count = shape.Aggregate(1L, (a, b) => a * b);
        var hash = Fnv1a(name);
        var data = new double[count];
        var fanIn = shape.Length >= 2 ? shape.Skip(1).Aggregate(1L, (a, b) => a * b) : 0;
        var scale = shape.Length >= 2 ? 1.0 / Math.Sqrt(fanIn) : 0;
        for (long i = 0; i < count; i++)
        {
            var u = Unit(hash, i);
            data[i] = name.EndsWith("running_mean", StringComparison.Ordinal) ? 0.1 * ((2.0 * u) - 1.0)
                : name.EndsWith("running_var", StringComparison.Ordinal) ? 0.5 + u
                : shape.Length >= 2 ? ((2.0 * u) - 1.0) * scale
                : name.EndsWith("weight", StringComparison.Ordinal) ? 1.0 + (0.1 * ((2.0 * u) - 1.0))
                : 0.1 * ((2.0 * u) - 1.0);
        }

        return tensor(data, shape, ScalarType.Float64);
    }

    private static double Unit(ulong hash, long i)
    {
        unchecked
        {
            var z = hash + ((ulong)(i + 1) * 0x9E3779B97F4A7C15UL);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return (z >> 11) * (1.0 / (1UL << 53));
        }
    }

    private static ulong Fnv1a(string name)
    {
        unchecked
        {
            var h = 0xCBF29CE484222325UL;
            foreach (var b in Encoding.UTF8.GetBytes(name))
            {
                h ^= b;
                h *= 0x100000001B3UL;
            }

            return h;
        }
    }
}
