using DTSKD.Core.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// One training step: augmentation, forward pass, objective, backward pass, gradients averaged over the ranks, optimizer
/// step, in the run's number format. Owns the precision policy (master weights, loss scaling), the optimizer and the
/// gradient buckets; gives the model back in float32 when disposed.
/// </summary>
internal sealed class OptimizationStep : IDisposable
{
    private readonly IMultiBranchModel _model;
    private readonly IMultiBranchObjective _objective;
    private readonly IBatchAugmentation _augmentation;
    private readonly TrainerOptions _options;
    private readonly IProcessGroup _group;
    private readonly GradientBuckets _gradients;
    private readonly FineTuningSetup _tuning;

    /// <summary>With a shard-sized history, each training sample's row in it (owned here); null to pass sample indices as they are.</summary>
    private Tensor? _rows;

    private OptimizationStep(
        IMultiBranchModel model, IMultiBranchObjective objective, IBatchAugmentation augmentation, TrainerOptions options,
        PrecisionPolicy precision, optim.Optimizer optimizer, IReadOnlyList<Parameter> stepped, IProcessGroup group, FineTuningSetup tuning, Tensor? rows)
    {
        (_model, _objective, _augmentation, _options, _group, _tuning, _rows) = (model, objective, augmentation, options, group, tuning, rows);
        (Precision, Optimizer) = (precision, optimizer);
        Input = new InputFormat(precision.WeightType, options.ChannelsLast && options.Precision != TrainingPrecision.Float64);
        _gradients = new GradientBuckets(stepped, group);
    }

    public PrecisionPolicy Precision { get; }

    public optim.Optimizer Optimizer { get; }

    /// <summary>The format batches enter the model in (for evaluation too).</summary>
    public InputFormat Input { get; }

    /// <summary>
    /// Moves the model to the device, converts it to the run's precision, freezes what the fine-tuning freezes and builds
    /// the optimizer over the parameters it steps (in two groups when the pretrained ones learn at another rate). If
    /// anything fails, the model is put back where and how it was.
    /// </summary>
    /// <param name="model">The model (not owned).</param>
    /// <param name="objective">The objective (not owned).</param>
    /// <param name="augmentation">The training augmentation.</param>
    /// <param name="options">The run's options.</param>
    /// <param name="device">The training device.</param>
    /// <param name="order">The epochs' sample order, whose shard gives each sample's row in a shard-sized history.</param>
    /// <exception cref="ArgumentException">The model or the optimizer does not fit the precision or the checkpoints, or a per-sample objective's rows fit neither the training set nor this rank's shard; the model is unchanged.</exception>
    public static OptimizationStep Create(IMultiBranchModel model, IMultiBranchObjective objective, IBatchAugmentation augmentation, TrainerOptions options, Device device, EpochOrder order)
    {
        var group = options.ProcessGroup ?? SingleProcessGroup.Instance;
        var rows = ShardRows(objective, order, group);
        var module = (nn.Module)model;
        var home = model.parameters().FirstOrDefault()?.device ?? CPU;
        var channelsLast = options.ChannelsLast && options.Precision != TrainingPrecision.Float64;
        var tuning = new FineTuningSetup(model, options.FineTuning);
        var precision = new PrecisionPolicy(options.Precision, device, options.AllowTf32, channelsLast);
        try
        {
            module.to(device);
            var (stepped, groups) = tuning.Split(model, precision.Prepare(model), options);
            tuning.Freeze(model);
            var optimizer = options.Optimizer?.Invoke(stepped)
                ?? (groups is null ? options.CreateDefaultOptimizer(stepped) : optim.SGD(groups, options.LearningRate, options.Momentum, 0, options.WeightDecay, options.Nesterov));
            if (optimizer is not OptimizerHelper)
            {
                throw new ArgumentException(
                    $"The optimizer {optimizer.GetType().Name} cannot save its state for checkpoints; use a TorchSharp optimizer (they derive from OptimizerHelper).",
                    nameof(options));
            }

            return new OptimizationStep(model, objective, augmentation, options, precision, optimizer, stepped, group, tuning, rows);
        }
        catch
        {
            rows?.Dispose();
            precision.Undo(model);
            precision.Dispose();
            tuning.Release(model);
            module.to(home);
            throw;
        }
    }

    /// <summary>The ranks training together.</summary>
    public IProcessGroup Group => _group;

    /// <summary>Puts the model in training mode, the batch norms the fine-tuning fixes in eval mode.</summary>
    public void TrainMode() => _tuning.TrainMode(_model);

    /// <summary>Trains one batch; <paramref name="observe"/> sees the step's output and loss while they are alive.</summary>
    /// <exception cref="TrainingDivergedException">The objective refused non-finite logits.</exception>
    public void Run(ImageBatch batch, int epoch, Action<MultiBranchOutput, MultiBranchLossResult> observe)
    {
        using var scope = NewDisposeScope();
        // Each rank draws its own augmentation for the same step.
        var draw = (batch.Step * (long)_group.WorldSize) + _group.Rank;
        var images = _augmentation.Augment(batch.Images, _options.Seed, epoch, (int)draw);
        ReplicaSync.Buffers(_model, _group);
        using var output = _model.call(Input.Apply(images));
        using var result = Objective(output, batch.Labels, batch.Indices, epoch, batch.Step);
        Precision.ZeroGradients(Optimizer);
        Precision.BackwardAndStep(result.Total, Optimizer, _gradients.Average);
        observe(output, result);
    }

    public void Dispose()
    {
        _rows?.Dispose();
        Precision.RestoreFloat32(_model);
        Precision.Dispose();
        _tuning.Release(_model);
        Optimizer.Dispose();
        _gradients.Dispose();
    }

    /// <summary>The objective's loss; an objective that refuses non-finite logits means the training diverged.</summary>
    private MultiBranchLossResult Objective(MultiBranchOutput output, Tensor labels, Tensor indices, int epoch, int step)
    {
        try
        {
            // A shard-sized history: each sample's row in this rank's shard (the map moves to the indices' device once).
            if (_rows is { } rows)
            {
                if (rows.device_type != indices.device_type || rows.device_index != indices.device_index)
                {
                    // Out of the step's dispose scope: the map lives as long as the step.
                    _rows = rows.to(indices.device).DetachFromDisposeScope();
                    rows.Dispose();
                }

                indices = _rows!.index(indices);
            }

            return _objective.Compute(output, labels, indices, epoch, _options.Epochs);
        }
        catch (ArgumentException) when (output.Heads.Any(h => !h.isfinite().all().item<bool>()))
        {
            throw new TrainingDivergedException(epoch, step);
        }
    }

    /// <summary>
    /// With several ranks and an objective whose per-sample rows are this rank's shard (<see cref="DataParallel.ShardSize"/>),
    /// each training sample's row in it; null when the rows are the whole training set (or there is one rank).
    /// </summary>
    private static Tensor? ShardRows(IMultiBranchObjective objective, EpochOrder order, IProcessGroup group)
    {
        if (group.WorldSize == 1 || objective is not IPerSampleObjective { SampleRows: { } rows } || rows == order.SampleCount)
        {
            return null;
        }

        var shard = DataParallel.ShardSize(order.SampleCount, group);
        return rows == shard
            ? order.LocalRows()
            : throw new ArgumentException(
                $"The objective keeps {rows} per-sample rows; give it the training set's {order.SampleCount}, or rank {group.Rank}'s shard of {shard} (DataParallel.ShardSize).", nameof(objective));
    }
}
