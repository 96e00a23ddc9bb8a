using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// SGD with momentum, Nesterov and weight decay, with PyTorch's update rule, over one flat buffer: the
/// parameters become views into a single contiguous tensor and their gradients views into another, so a step
/// is a handful of kernels whatever the number of parameters (TorchSharp's SGD runs several per parameter).
/// It keeps the float32 master weights of half-precision training (<see cref="PrecisionPolicy"/>).
/// </summary>
/// <remarks>
/// <para>
/// The rule, as <c>torch.optim.SGD</c>: <c>d = g + wd·p</c>; with momentum, <c>b = d</c> on the first step and
/// <c>b = m·b + (1 − dampening)·d</c> after; <c>d = d + m·b</c> (Nesterov) or <c>d = b</c>; <c>p = p − lr·d</c>.
/// </para>
/// <para>
/// It is a TorchSharp optimizer with one parameter group, so TorchSharp's learning-rate schedulers drive it.
/// Create it after the model has been moved to its device, and zero gradients with <see cref="zero_grad"/>
/// (not the module's <c>zero_grad</c>, which may drop the gradient views). The optimizer owns the flat buffers
/// and its momentum, and releases them on <c>Dispose</c> (the parameters keep their own reference to
/// the storage they live in, and lose their gradient views).
/// </para>
/// </remarks>
internal sealed class FlatSgd : OptimizerHelper
{
    private const string StateMagic = "DTSKD.FlatSgd/1";
    private readonly Parameter[] _parameters;
    private readonly Tensor _flat;
    private readonly Tensor _grad;

    // Parameters kept in a half format for the forward and backward passes (mixed precision): they are views
    // into _half, their gradients views into _halfGrad, and their float32 master copies the first _halfCount
    // elements of _flat.
    private readonly Tensor? _half;
    private readonly Tensor? _halfGrad;
    private readonly long _halfCount;
    private Tensor? _momentumBuffer;
    private bool _disposed;

    /// <summary>Gathers the parameters into one buffer and creates the optimizer.</summary>
    /// <param name="parameters">The parameters to optimise, on one device: float32, and at most one half format (whose float32 masters the optimizer keeps).</param>
    /// <param name="learningRate">The learning rate (&gt; 0).</param>
    /// <param name="momentum">Momentum factor (0 for none).</param>
    /// <param name="weightDecay">L2 weight decay.</param>
    /// <param name="nesterov">Whether to use Nesterov momentum (needs momentum &gt; 0).</param>
    /// <param name="dampening">Momentum dampening.</param>
    public FlatSgd(IEnumerable<Parameter> parameters, double learningRate, double momentum = 0, double weightDecay = 0, bool nesterov = false, double dampening = 0)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        _parameters = [.. parameters];
        if (_parameters.Length == 0)
        {
            throw new ArgumentException("There are no parameters to optimise.", nameof(parameters));
        }

        var halfTypes = _parameters.Select(p => p.dtype).Where(t => t != ScalarType.Float32).Distinct().ToList();
        if (halfTypes.Count > 1 || halfTypes.Any(t => t is not (ScalarType.BFloat16 or ScalarType.Float16))
            || _parameters.Select(p => p.device.ToString()).Distinct().Count() != 1)
        {
            throw new ArgumentException(
                "FlatSgd needs parameters on one device, in float32 and at most one half format (bfloat16 or float16).", nameof(parameters));
        }

        _defaults = new OptimizerOptions { LearningRate = learningRate, InitialLearningRate = learningRate };
        _parameter_groups = [new ParamGroup<OptimizerOptions>(_parameters, _defaults)];
        Momentum = momentum;
        WeightDecay = weightDecay;
        Nesterov = nesterov;
        Dampening = dampening;
        Validate();

        // Half parameters first, so their master copies are one contiguous slice of the float32 buffer.
        _parameters = [.. _parameters.Where(p => p.dtype != ScalarType.Float32), .. _parameters.Where(p => p.dtype == ScalarType.Float32)];
        var total = _parameters.Sum(p => p.numel());
        _halfCount = _parameters.Where(p => p.dtype != ScalarType.Float32).Sum(p => p.numel());
        var device = _parameters[0].device;
        _flat = empty([total], ScalarType.Float32, device).DetachFromDisposeScope();
        _grad = zeros([total], ScalarType.Float32, device).DetachFromDisposeScope();
        if (halfTypes.Count == 1)
        {
            _half = empty([_halfCount], halfTypes[0], device).DetachFromDisposeScope();
            _halfGrad = zeros([_halfCount], halfTypes[0], device).DetachFromDisposeScope();
        }

        using var noGrad = no_grad();
        long offset = 0;
        foreach (var p in _parameters)
        {
            var n = p.numel();
            var isHalf = p.dtype != ScalarType.Float32;
            using var master = _flat.narrow(0, offset, n).view(p.shape);
            master.copy_(p);
            using var slot = (isHalf ? _half! : _flat).narrow(0, offset, n).view(p.shape);
            if (isHalf)
            {
                slot.copy_(p);
            }

            p.set_(slot);
            using var gradSlot = (isHalf ? _halfGrad! : _grad).narrow(0, offset, n).view(p.shape);
            p.grad = gradSlot;
            offset += n;
        }
    }

    /// <summary>The learning rate of the next step (the parameter group's, which schedulers set).</summary>
    public double LearningRate
    {
        get => _parameter_groups[0].LearningRate;
        set => _parameter_groups[0].LearningRate = value;
    }

    /// <summary>The momentum factor.</summary>
    public double Momentum { get; }

    /// <summary>The L2 weight decay.</summary>
    public double WeightDecay { get; }

    /// <summary>Whether the momentum is Nesterov's.</summary>
    public bool Nesterov { get; }

    /// <summary>The momentum dampening.</summary>
    public double Dampening { get; }

    /// <summary>The number of scalar parameters.</summary>
    public long Count => _flat.numel();

    /// <summary>All parameters, as one flat float32 tensor (a view the optimizer owns).</summary>
    internal Tensor Flat => _flat;

    /// <summary>All gradients, as one flat float32 tensor (a view the optimizer owns).</summary>
    internal Tensor FlatGrad => _grad;

    /// <summary>Sets every gradient to zero (one kernel).</summary>
    public override void zero_grad()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var noGrad = no_grad();
        _grad.fill_(0);
        _halfGrad?.fill_(0);
    }

    /// <summary>Applies one update from the current gradients.</summary>
    /// <param name="closure">An optional closure that recomputes the loss, evaluated before the update.</param>
    /// <returns>The closure's loss, or null.</returns>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        Tensor? loss = null;
        if (closure is not null)
        {
            using var grad = enable_grad();
            loss = closure();
        }

        GatherGradients();
        Step(skip: null);
        return loss!;
    }

    /// <summary>Not available: <see cref="Save"/> writes the flat state.</summary>
    /// <returns>Never returns.</returns>
    public override StateDictionary state_dict() =>
        throw new NotSupportedException("FlatSgd keeps its state in flat buffers; use Save and Load.");

    /// <summary>Each half-format parameter with a view of its float32 master.</summary>
    internal IEnumerable<(Parameter Parameter, Tensor Master)> HalfMasters()
    {
        long offset = 0;
        foreach (var p in _parameters.TakeWhile(p => p.dtype != ScalarType.Float32))
        {
            yield return (p, _flat.narrow(0, offset, p.numel()).view(p.shape));
            offset += p.numel();
        }
    }

    /// <summary>Brings the half-format gradients into the float32 gradient buffer, and returns that buffer.</summary>
    internal Tensor GatherGradients()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_halfGrad is not null)
        {
            using var noGrad = no_grad();
            using var region = _grad.narrow(0, 0, _halfCount);
            region.copy_(_halfGrad);
        }

        return _grad;
    }

    /// <summary>
    /// Applies one update, unless <paramref name="skip"/> (a 0-dim bool tensor on the device) is true, in which case
    /// parameters and momentum stay as they were. Nothing is read back from the device.
    /// </summary>
    internal void Step(Tensor? skip)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();

        // d = g + wd * p, built in the gradient buffer (the gradients are not needed after the step).
        var d = WeightDecay != 0 ? _grad.add_(_flat, alpha: WeightDecay) : _grad;
        if (Momentum != 0)
        {
            if (_momentumBuffer is null)
            {
                _momentumBuffer = skip is null ? d.clone() : where(skip, zeros_like(d), d);
                _momentumBuffer.DetachFromDisposeScope();
            }
            else
            {
                var updated = _momentumBuffer.mul(Momentum).add_(d, alpha: 1 - Dampening);
                _momentumBuffer.copy_(skip is null ? updated : where(skip, _momentumBuffer, updated));
            }

            d = Nesterov ? d.add_(_momentumBuffer, alpha: Momentum) : _momentumBuffer;
        }

        if (skip is null)
        {
            _flat.add_(d, alpha: -LearningRate);
        }
        else
        {
            _flat.add_(where(skip, zeros_like(d), d), alpha: -LearningRate);
        }

        // The passes use the half copies: refresh them from the updated float32 masters.
        _half?.copy_(_flat.narrow(0, 0, _halfCount));
    }

    /// <summary>Writes the hyper-parameters and the momentum buffer.</summary>
    /// <param name="writer">The destination.</param>
    public void Save(BinaryWriter writer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write(StateMagic);
        writer.Write(Count);
        writer.Write(LearningRate);
        writer.Write(Momentum);
        writer.Write(WeightDecay);
        writer.Write(Nesterov);
        writer.Write(Dampening);
        writer.Write(_momentumBuffer is not null);
        _momentumBuffer?.Save(writer);

        // With half parameters the model holds rounded copies: the float32 masters are part of the state.
        writer.Write(_half is not null);
        if (_half is not null)
        {
            _flat.Save(writer);
        }
    }

    /// <summary>Restores what <see cref="Save"/> wrote, for the same parameters.</summary>
    /// <param name="reader">The source.</param>
    /// <exception cref="InvalidDataException">The state is for another number of parameters, or is not an FlatSgd state.</exception>
    public void Load(BinaryReader reader)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(reader);
        if (reader.ReadString() is var magic && magic != StateMagic)
        {
            throw new InvalidDataException($"Not an optimizer state written by FlatSgd (found '{magic}').");
        }

        var count = reader.ReadInt64();
        if (count != Count)
        {
            throw new InvalidDataException($"The optimizer state is for {count} parameters; this optimizer has {Count}.");
        }

        LearningRate = reader.ReadDouble();
        _ = (reader.ReadDouble(), reader.ReadDouble(), reader.ReadBoolean(), reader.ReadDouble());
        var hasMomentum = reader.ReadBoolean();
        _momentumBuffer?.Dispose();
        _momentumBuffer = null;
        if (hasMomentum)
        {
            var buffer = zeros_like(_flat).DetachFromDisposeScope();
            buffer.Load(reader);
            _momentumBuffer = buffer;
        }

        if (reader.ReadBoolean() != (_half is not null))
        {
            throw new InvalidDataException("The optimizer state was saved with a different precision (float32 masters of half parameters present in one, not the other).");
        }

        if (_half is not null)
        {
            using var noGrad = no_grad();
            _flat.Load(reader);
            _half.copy_(_flat.narrow(0, 0, _halfCount));
        }
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (_disposed || !disposing)
        {
            base.Dispose(disposing);
            return;
        }

        _disposed = true;
        // Parameters replaced since (a module converted to another format) are already gone.
        foreach (var p in _parameters.Where(p => !p.IsInvalid))
        {
            p.grad = null;
        }

        _momentumBuffer?.Dispose();
        _grad.Dispose();
        _flat.Dispose();
        _half?.Dispose();
        _halfGrad?.Dispose();
        base.Dispose(disposing);
    }

    private void Validate()
    {
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate))
        {
            throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "The learning rate must be a finite number > 0.");
        }

        if (!(Momentum >= 0 && Momentum < 1) || !(WeightDecay >= 0) || !(Dampening >= 0 && Dampening <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(Momentum), "Momentum must be in [0, 1), weight decay >= 0 and dampening in [0, 1].");
        }

        if (Nesterov && (Momentum == 0 || Dampening != 0))
        {
            throw new ArgumentException("Nesterov momentum needs momentum > 0 and no dampening.", nameof(Nesterov));
        }
    }
}
