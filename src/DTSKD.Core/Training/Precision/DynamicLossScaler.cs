using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// Dynamic loss scaling for float16 training, with the semantics of PyTorch's <c>GradScaler</c>: the loss is
/// multiplied by the scale before backward; gradients are divided by it before the step; a step whose gradients
/// hold an inf or NaN is skipped and the scale multiplied by <see cref="BackoffFactor"/>; after
/// <see cref="GrowthInterval"/> steps in a row without one, the scale is multiplied by <see cref="GrowthFactor"/>.
/// </summary>
/// <remarks>
/// The scale and the count of good steps live on the device and are updated there, so no step waits for the
/// device (PyTorch's scaler reads the overflow flag back every step). The scaler owns these tensors.
/// </remarks>
internal sealed class DynamicLossScaler : IDisposable
{
    private const string StateMagic = "DTSKD.DynamicLossScaler/1";
    private readonly Tensor _scale;
    private readonly Tensor _goodSteps;
    private bool _disposed;

    /// <summary>Creates a scaler.</summary>
    /// <param name="device">Where the gradients live.</param>
    /// <param name="initialScale">The first scale (PyTorch: 65536).</param>
    /// <param name="growthFactor">Growth after <paramref name="growthInterval"/> good steps (PyTorch: 2).</param>
    /// <param name="backoffFactor">Factor on overflow (PyTorch: 0.5).</param>
    /// <param name="growthInterval">Good steps in a row before growing (PyTorch: 2000).</param>
    public DynamicLossScaler(Device device, double initialScale = 65536, double growthFactor = 2, double backoffFactor = 0.5, int growthInterval = 2000)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (!(initialScale > 0) || double.IsInfinity(initialScale) || !(growthFactor > 1) || !(backoffFactor > 0 && backoffFactor < 1) || growthInterval < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(initialScale),
                "initialScale must be finite and > 0, growthFactor > 1, backoffFactor in (0, 1), growthInterval >= 1.");
        }

        GrowthFactor = growthFactor;
        BackoffFactor = backoffFactor;
        GrowthInterval = growthInterval;
        _scale = full([], initialScale, ScalarType.Float32, device).DetachFromDisposeScope();
        _goodSteps = zeros([], ScalarType.Int64, device).DetachFromDisposeScope();
    }

    /// <summary>The growth factor.</summary>
    public double GrowthFactor { get; }

    /// <summary>The back-off factor.</summary>
    public double BackoffFactor { get; }

    /// <summary>Good steps in a row before the scale grows.</summary>
    public int GrowthInterval { get; }

    /// <summary>The current scale (reads it back from the device).</summary>
    public double Scale
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _scale.item<float>();
        }
    }

    /// <summary>The loss times the scale, to call <c>backward()</c> on.</summary>
    /// <param name="loss">The loss (0-dim).</param>
    /// <returns>A new tensor the caller owns.</returns>
    public Tensor ScaleLoss(Tensor loss)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(loss);
        return loss.mul(_scale.to(loss.dtype));
    }

    /// <summary>Divides the gradients by the scale in place and tells whether any is inf or NaN.</summary>
    /// <param name="gradients">The (flat, float32) gradients.</param>
    /// <returns>A 0-dim bool tensor on the device: true when the step must be skipped. The caller owns it.</returns>
    public Tensor Unscale(Tensor gradients)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(gradients);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        gradients.mul_(_scale.reciprocal());
        return gradients.isfinite().all().logical_not().MoveToOuterDisposeScope();
    }

    /// <summary>Updates the scale after a step: back off on overflow, grow after <see cref="GrowthInterval"/> good steps.</summary>
    /// <param name="overflow">What <see cref="Unscale"/> returned.</param>
    public void Update(Tensor overflow)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(overflow);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var good = _goodSteps.add(1);
        var grow = good.ge(GrowthInterval).logical_and(overflow.logical_not());
        var factor = where(overflow, full([], BackoffFactor, ScalarType.Float32, _scale.device),
            where(grow, full([], GrowthFactor, ScalarType.Float32, _scale.device), ones([], ScalarType.Float32, _scale.device)));
        _scale.mul_(factor);
        _goodSteps.copy_(where(overflow.logical_or(grow), zeros_like(good), good));
    }

    /// <summary>Writes the scale and the count of good steps.</summary>
    /// <param name="writer">The destination.</param>
    public void Save(BinaryWriter writer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write(StateMagic);
        writer.Write((double)_scale.item<float>());
        writer.Write(_goodSteps.item<long>());
    }

    /// <summary>Restores what <see cref="Save"/> wrote.</summary>
    /// <param name="reader">The source.</param>
    public void Load(BinaryReader reader)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(reader);
        if (reader.ReadString() is var magic && magic != StateMagic)
        {
            throw new InvalidDataException($"Not a loss-scaler state (found '{magic}').");
        }

        _scale.fill_(reader.ReadDouble());
        _goodSteps.fill_(reader.ReadInt64());
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _scale.Dispose();
            _goodSteps.Dispose();
        }
    }
}
