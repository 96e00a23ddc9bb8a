using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>Argument checks on tensors, with messages that name the argument and what was expected.</summary>
internal static class TensorChecks
{
    public static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";

    public static void Logits(Tensor logits, string name)
    {
        ArgumentNullException.ThrowIfNull(logits, name);
        if (logits.dim() != 2 || logits.shape[0] == 0 || logits.shape[1] == 0)
        {
            throw new ArgumentException($"{name} must be a non-empty 2-D tensor [batch, classes]; got shape {Shape(logits)}.", name);
        }

        if (!logits.is_floating_point())
        {
            throw new ArgumentException($"{name} must be a floating-point tensor; got {logits.dtype}.", name);
        }
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
    public static void IndexVector(Tensor t, string name, long length, long upperExclusive, string what)
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

        using var scope = NewDisposeScope();
        var (min, max) = (t.min().item<long>(), t.max().item<long>());
        if (min < 0 || max >= upperExclusive)
        {
            var bad = min < 0 ? min : max;
            throw new ArgumentException(
                $"{name} must hold {what} in 0..{upperExclusive - 1}; found {bad}.", name);
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
