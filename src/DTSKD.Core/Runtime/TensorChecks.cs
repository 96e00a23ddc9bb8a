using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>Argument checks on tensors, with messages that name the argument and what was expected.</summary>
internal static class TensorChecks
{
    public static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";

    public static void Logits(Tensor logits, string name, bool allowStack = false)
    {
        ArgumentNullException.ThrowIfNull(logits, name);
        var stacked = allowStack && logits.dim() == 3;
        if ((logits.dim() != 2 && !stacked) || logits.shape.Any(d => d == 0))
        {
            var expected = allowStack ? "a non-empty tensor [batch, classes] or [heads, batch, classes]" : "a non-empty 2-D tensor [batch, classes]";
            throw new ArgumentException($"{name} must be {expected}; got shape {Shape(logits)}.", name);
        }

        if (!logits.is_floating_point())
        {
            throw new ArgumentException($"{name} must be a floating-point tensor; got {logits.dtype}.", name);
        }
    }

    /// <summary>Checks that <paramref name="b"/> has <paramref name="a"/>'s shape, or is one [batch, classes] shared by a stack <paramref name="a"/>.</summary>
    public static void Broadcastable(Tensor a, string nameA, Tensor b, string nameB)
    {
        if (a.dim() == 3 && b.dim() == 2 && a.shape[1] == b.shape[0] && a.shape[2] == b.shape[1])
        {
            return;
        }

        SameShape(a, nameA, b, nameB);
    }

    public static void SameShape(Tensor a, string nameA, Tensor b, string nameB)
    {
        if (!a.shape.SequenceEqual(b.shape))
        {
            throw new ArgumentException(
                $"{nameB} must have the shape of {nameA}, {Shape(a)}; got {Shape(b)}.", nameB);
        }
    }

    /// <summary>Throws when any element is NaN or infinite. Reads one value back from the device.</summary>
    public static void Finite(Tensor t, string name)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        if (!t.isfinite().all().item<bool>())
        {
            throw new ArgumentException($"{name} contains NaN or infinite values.", name);
        }
    }

    /// <summary>Checks a 1-D integer tensor of length <paramref name="length"/> with values in [0, <paramref name="upperExclusive"/>).</summary>
    public static void IndexVector(Tensor t, string name, long length, long upperExclusive, string what, bool checkRange = true)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        if (t.dim() != 1 || t.shape[0] != length)
        {
            throw new ArgumentException($"{name} must be a 1-D tensor of length {length}; got shape {Shape(t)}.", name);
        }

        if (t.dtype is not (ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int16 or ScalarType.Int8 or ScalarType.Byte))
        {
            throw new ArgumentException($"{name} must be an integer tensor; got {t.dtype}.", name);
        }

        if (!checkRange)
        {
            return;
        }

        using var scope = NewDisposeScope();
        var (min, max) = (t.min().item<long>(), t.max().item<long>());
        if (min < 0 || max >= upperExclusive)
        {
            var bad = min < 0 ? min : max;
            throw new ArgumentException(
                $"{name} must hold {what} in 0..{upperExclusive - 1}; found {bad}.", name);
        }
    }

    public static void Alpha(double alpha, string name)
    {
        if (!(alpha >= 0 && alpha <= 1))
        {
            throw new ArgumentOutOfRangeException(name, alpha, $"{name} must be in [0, 1].");
        }
    }

    /// <summary>
    /// The one check of an objective's inputs: the output has the objective's heads and classes, the labels (and,
    /// when <paramref name="sampleCount"/> is given, the sample indices) are in range, and, when
    /// <paramref name="values"/> is set, every logit is finite (which reads values back from the device).
    /// </summary>
    public static void ObjectiveInputs(MultiBranchOutput output, Tensor labels, Tensor indices, int branchCount, int classCount, int? sampleCount, bool values)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(indices);
        if (output.BranchCount != branchCount)
        {
            throw new ArgumentException($"output has {output.BranchCount} branches but the objective was built for {branchCount}.", nameof(output));
        }

        var (batch, classes) = (output.Backbone.shape[0], output.Backbone.shape[1]);
        if (classes != classCount)
        {
            throw new ArgumentException($"output has {classes} classes but the objective was built for {classCount}.", nameof(output));
        }

        IndexVector(labels, nameof(labels), batch, classCount, "class labels", values);
        if (sampleCount is { } n)
        {
            IndexVector(indices, nameof(indices), batch, n, "sample indices", values);
        }

        if (!values)
        {
            return;
        }

        for (var h = 0; h < output.Heads.Count; h++)
        {
            Finite(output.Heads[h], h == 0 ? "output.Backbone" : $"output.Branches[{h - 1}]");
        }
    }

    public static void Temperature(double temperature, string name)
    {
        if (!(temperature > 0) || double.IsInfinity(temperature))
        {
            throw new ArgumentOutOfRangeException(name, temperature, "The temperature must be a finite number greater than 0.");
        }
    }
}
