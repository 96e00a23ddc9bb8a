using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// Everything the trainer does differently per <see cref="TrainingPrecision"/>: the model's weight formats, the input
/// format, the optimizer that keeps float32 masters, loss scaling for float16, TF32 while a run is active, and giving
/// the model back in its original format.
/// </summary>
internal sealed class PrecisionPolicy : IDisposable
{
    private const string StateMagic = "DTSKD.Precision/1";
    private readonly Device _device;
    private readonly bool _allowTf32;
    private DynamicLossScaler? _scaler;
    private FlatSgd? _masters;

    public PrecisionPolicy(TrainingPrecision precision, Device device, bool allowTf32)
    {
        Precision = precision;
        _device = device;
        _allowTf32 = allowTf32;
        WeightType = precision switch
        {
            TrainingPrecision.BFloat16 => ScalarType.BFloat16,
            TrainingPrecision.Float16 => ScalarType.Float16,
            TrainingPrecision.Float64 => ScalarType.Float64,
            _ => null,
        };
        _scaler = precision == TrainingPrecision.Float16 ? new DynamicLossScaler(device) : null;
    }

    public TrainingPrecision Precision { get; }

    /// <summary>The format of the model's weights and inputs, or null for float32.</summary>
    public ScalarType? WeightType { get; }

    private bool IsHalf => Precision is TrainingPrecision.BFloat16 or TrainingPrecision.Float16;

    /// <summary>Converts the model: half formats for every leaf module but normalisation layers, or float64 for everything.</summary>
    public void Prepare(IMultiBranchModel model)
    {
        if (Precision == TrainingPrecision.Float64)
        {
            foreach (var module in Leaves(model))
            {
                module.to(ScalarType.Float64);
            }
        }
        else if (WeightType is { } half)
        {
            foreach (var module in Leaves(model).Where(m => !IsNormalisation(m)))
            {
                module.to(half);
            }
        }
    }

    /// <summary>The optimizer: the user's or the recipe's SGD, or, in a half format, the flat SGD holding the float32 masters.</summary>
    public optim.Optimizer CreateOptimizer(IMultiBranchModel model, TrainerOptions options)
    {
        IReadOnlyList<Parameter> parameters = [.. model.parameters()];
        if (IsHalf)
        {
            _masters = new FlatSgd(parameters, options.LearningRate, options.Momentum, options.WeightDecay, options.Nesterov);
            return _masters;
        }

        return options.Optimizer?.Invoke(parameters) ?? options.CreateDefaultOptimizer(parameters);
    }

    /// <summary>Back-propagates the loss and applies one optimizer step (skipped on a float16 overflow, decided on the device).</summary>
    public void BackwardAndStep(Tensor loss, optim.Optimizer optimizer)
    {
        if (_scaler is null)
        {
            loss.backward();
            optimizer.step();
            return;
        }

        using var scope = NewDisposeScope();
        _scaler.ScaleLoss(loss).backward();
        var overflow = _scaler.Unscale(_masters!.GatherGradients());
        _masters.Step(overflow);
        _scaler.Update(overflow);
    }

    /// <summary>With float16 a non-finite loss is an overflow the scaler handles, not a divergence.</summary>
    public bool GuardsNonFiniteLoss => _scaler is null;

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
        if (reader.ReadString() is var magic && magic != StateMagic)
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

    /// <summary>Gives the model back in float32, with the optimizer's float32 master weights (not their rounded copies).</summary>
    public void RestoreFloat32(IMultiBranchModel model)
    {
        if (!IsHalf || _masters is null)
        {
            return;
        }

        var names = new Dictionary<object, string>(ReferenceEqualityComparer.Instance);
        foreach (var (name, parameter) in model.named_parameters())
        {
            names[parameter] = name;
        }

        var masters = _masters.HalfMasters().Select(h =>
        {
            using var view = h.Master;
            return (Name: names[h.Parameter], Master: view.clone().DetachFromDisposeScope());
        }).ToList();
        foreach (var module in Leaves(model))
        {
            module.to(ScalarType.Float32);
        }

        var live = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var noGrad = no_grad();
        foreach (var (name, master) in masters)
        {
            live[name].copy_(master);
            master.Dispose();
        }
    }

    public void Dispose()
    {
        _scaler?.Dispose();
        _scaler = null;
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
