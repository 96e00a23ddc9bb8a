using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// Everything the trainer does differently per <see cref="TrainingPrecision"/>: the model's weight formats, the input
/// format, float32 master weights under any optimizer in the half formats (<see cref="MasterWeights"/>), loss scaling
/// for float16, TF32 while a run is active, what a checkpoint stores of the model, and giving the model back in float32.
/// </summary>
internal sealed class PrecisionPolicy : IDisposable
{
    private const string StateMagic = "DTSKD.Precision/2";
    private readonly Device _device;
    private readonly bool _allowTf32;
    private readonly bool _channelsLast;
    private DynamicLossScaler? _scaler;
    private MasterWeights? _masters;

    public PrecisionPolicy(TrainingPrecision precision, Device device, bool allowTf32, bool channelsLast = false)
    {
        Precision = precision;
        _channelsLast = channelsLast && precision != TrainingPrecision.Float64;
        _device = device;
        _allowTf32 = allowTf32;
        WeightType = WeightTypeOf(precision);
        _scaler = precision == TrainingPrecision.Float16 ? new DynamicLossScaler(device) : null;
    }

    public TrainingPrecision Precision { get; }

    /// <summary>The format of the model's weights and inputs, or null for float32.</summary>
    public ScalarType? WeightType { get; }

    private bool IsHalf => Precision is TrainingPrecision.BFloat16 or TrainingPrecision.Float16;

    /// <summary>The format of a precision's weights and inputs, or null for float32.</summary>
    public static ScalarType? WeightTypeOf(TrainingPrecision precision) => precision switch
    {
        TrainingPrecision.BFloat16 => ScalarType.BFloat16,
        TrainingPrecision.Float16 => ScalarType.Float16,
        TrainingPrecision.Float64 => ScalarType.Float64,
        _ => null,
    };

    /// <summary>Converts a model to a precision: half formats for every leaf module but normalisation layers, or float64 for everything.</summary>
    public static void Convert(IMultiBranchModel model, TrainingPrecision precision)
    {
        var type = WeightTypeOf(precision);
        foreach (var module in Leaves(model).Where(m => type is not { } t || t == ScalarType.Float64 || !IsNormalisation(m)))
        {
            module.to(type ?? ScalarType.Float32);
        }
    }

    /// <summary>Converts the model, and in a half format or a channels-last layout sets up its float32 masters.</summary>
    /// <returns>The parameters the optimizer steps: the model's own, or the float32 masters of its working weights.</returns>
    /// <exception cref="ArgumentException">A half format needs a float32 model on one device; nothing is changed then.</exception>
    public IReadOnlyList<Parameter> Prepare(IMultiBranchModel model)
    {
        if (IsHalf && model.named_parameters().FirstOrDefault(p => p.parameter.dtype != ScalarType.Float32) is { name: { } odd } found)
        {
            throw new ArgumentException($"Precision {Precision} trains a float32 model with float32 master weights; parameter '{odd}' is {found.parameter.dtype}.", nameof(model));
        }

        if (IsHalf && model.parameters().Select(p => p.device.ToString()).Distinct().Count() > 1)
        {
            throw new ArgumentException($"Precision {Precision} needs every parameter on one device.", nameof(model));
        }

        if (!IsHalf)
        {
            if (Precision == TrainingPrecision.Float64)
            {
                Convert(model, Precision);
            }

            // Channels-last convolution weights train as copies of contiguous masters, so the optimizer's state has the
            // same layout whatever the run's (TorchSharp saves optimizer state in memory order).
            if (_channelsLast && model.parameters().Any(p => p.dim() == 4))
            {
                _masters = new MasterWeights([.. model.named_parameters()], channelsLast: true);
                return _masters.Parameters;
            }

            return [.. model.parameters()];
        }

        // The masters start from the exact float32 values; the half weights are their rounding.
        using var scope = NewDisposeScope();
        var exact = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        Convert(model, Precision);
        _masters = new MasterWeights([.. model.named_parameters()], exact, _channelsLast);
        return _masters.Parameters;
    }

    /// <summary>Zeroes the gradients of a step.</summary>
    public void ZeroGradients(optim.Optimizer optimizer)
    {
        if (_masters is null)
        {
            optimizer.zero_grad();
        }
        else
        {
            _masters.ZeroGradients();
        }
    }

    /// <summary>
    /// Back-propagates the loss and applies one optimizer step. In a half format the gradients reach the float32 masters
    /// first and the updated masters come back rounded; with float16, a step whose gradients overflow is skipped (deciding
    /// that reads one flag from the device, as PyTorch's <c>GradScaler</c> does).
    /// </summary>
    /// <param name="loss">The step's loss.</param>
    /// <param name="optimizer">The optimizer over <see cref="Prepare"/>'s parameters.</param>
    /// <param name="synchronise">Called once the gradients the optimizer reads are in place (to average them over ranks).</param>
    public void BackwardAndStep(Tensor loss, optim.Optimizer optimizer, Action? synchronise = null)
    {
        if (_masters is null)
        {
            loss.backward();
            synchronise?.Invoke();
            optimizer.step();
            return;
        }

        using var scope = NewDisposeScope();
        (_scaler is null ? loss : _scaler.ScaleLoss(loss)).backward();
        _masters.GatherGradients();
        synchronise?.Invoke();
        if (_scaler is not null)
        {
            var overflow = _scaler.Unscale(_masters.Gradients);
            _scaler.Update(overflow);
            if (overflow.item<bool>())
            {
                return;
            }
        }

        optimizer.step();
        _masters.PublishWeights();
    }

    /// <summary>With float16 a non-finite loss is an overflow the scaler handles, not a divergence.</summary>
    public bool GuardsNonFiniteLoss => _scaler is null;

    /// <summary>
    /// The model's state as checkpoints store it: every parameter and buffer by name, with each half parameter's float32
    /// master in its place, so a checkpoint holds the float32 model whatever the training precision (the half weights
    /// are the masters, rounded). The tensors are the live ones or views of them: do not dispose them.
    /// </summary>
    public Dictionary<string, Tensor> CheckpointState(IMultiBranchModel model)
    {
        var state = model.state_dict();
        if (_masters is not null)
        {
            foreach (var (name, value) in _masters.Values)
            {
                state[name] = value;
            }
        }

        return state;
    }

    /// <summary>Call after values were copied into <see cref="CheckpointState"/>'s tensors: the half weights follow their masters.</summary>
    public void CheckpointStateLoaded() => _masters?.PublishWeights();

    /// <summary>Turns TF32 on or off for the duration of a run on CUDA, and back to what it was afterwards.</summary>
    public IDisposable Activate()
    {
        if (_device.type != DeviceType.CUDA)
        {
            return NoOp.Instance;
        }

        var (matmul, cudnn) = (backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32);
        backends.cuda.matmul.allow_tf32 = _allowTf32;
        backends.cudnn.allow_tf32 = _allowTf32;
        return new Restore(() =>
        {
            backends.cuda.matmul.allow_tf32 = matmul;
            backends.cudnn.allow_tf32 = cudnn;
        });
    }

    public void Save(BinaryWriter writer)
    {
        writer.Write(StateMagic);
        writer.Write(Precision.ToString());
        writer.Write(_scaler is not null);
        _scaler?.Save(writer);
    }

    public void Load(BinaryReader reader)
    {
        if (reader.ReadString() is var magic && magic != StateMagic && magic != "DTSKD.Precision/1")
        {
            throw new InvalidDataException($"Not a precision state (found '{magic}').");
        }

        var saved = reader.ReadString();
        if (reader.ReadBoolean())
        {
            if (_scaler is null)
            {
                throw new InvalidDataException($"The checkpoint was written in {saved} precision with loss scaling; this trainer runs in {Precision}.");
            }

            _scaler.Load(reader);
        }
    }

    /// <summary>Undoes <see cref="Prepare"/> after a failed construction: the model back in float32, with its exact values.</summary>
    public void Undo(IMultiBranchModel model)
    {
        if (_masters is not null)
        {
            RestoreFloat32(model);
        }
        else if (Precision == TrainingPrecision.Float64)
        {
            // float32 values survive a round trip through float64 exactly.
            Convert(model, TrainingPrecision.Float32);
        }
    }

    /// <summary>With master weights, gives the model back in float32 and contiguous, with the masters' values (not their rounded copies).</summary>
    public void RestoreFloat32(IMultiBranchModel model) => _masters?.Release(model, () => Convert(model, TrainingPrecision.Float32));

    public void Dispose()
    {
        _scaler?.Dispose();
        _scaler = null;
        _masters?.Dispose();
        _masters = null;
    }

    private static IEnumerable<nn.Module> Leaves(IMultiBranchModel model) => model.modules().Where(m => !m.children().Any());

    private static bool IsNormalisation(nn.Module module) =>
        module is BatchNorm1d or BatchNorm2d or BatchNorm3d or LayerNorm or GroupNorm or InstanceNorm1d or InstanceNorm2d or InstanceNorm3d;

    private sealed class Restore(Action restore) : IDisposable
    {
        public void Dispose() => restore();
    }

    private sealed class NoOp : IDisposable
    {
        public static readonly NoOp Instance = new();

        public void Dispose()
        {
        }
    }
}
