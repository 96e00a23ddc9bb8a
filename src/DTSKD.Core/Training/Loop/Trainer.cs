using System.Diagnostics;
using DTSKD.Core.Data;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// Trains a multi-branch model with any <see cref="IMultiBranchObjective"/>: any TorchSharp optimizer and learning-rate
/// scheduler (the recipe's SGD and MultiStepLR by default), seeded shuffling and on-device augmentation, per-head
/// evaluation after every epoch, callbacks, and checkpoints from which a run resumes exactly.
/// </summary>
/// <remarks>
/// <para>
/// Every random draw is a function of (<see cref="TrainerOptions.Seed"/>, epoch, step), so a CPU run resumed from a
/// checkpoint, even one written mid-epoch on cancellation, gives the same numbers as an uninterrupted one (with the
/// same number of CPU threads). Seed the model's initialisation yourself (<c>torch.manual_seed</c>) before building it.
/// </para>
/// <para>
/// Each step runs in its own dispose scope; the trainer owns the optimizer, the device copies of the datasets and its
/// running sums, and frees them on <see cref="Dispose"/>. It does not own the model, the objective or the datasets.
/// Create the trainer after building the model and do not move the model afterwards: the optimizer holds its
/// parameters. With a half <see cref="TrainerOptions.Precision"/>, the model's convolution and linear weights are in
/// that format while the trainer lives; disposing the trainer puts them back in float32, with the optimizer's float32
/// master values.
/// </para>
/// </remarks>
public sealed class Trainer : IDisposable
{
    private static readonly Action<ILogger, int, double, double, double, double, double, Exception?> LogEpoch =
        LoggerMessage.Define<int, double, double, double, double, double>(
            LogLevel.Information,
            new EventId(1, "Epoch"),
            "Epoch {Epoch}: loss {Loss:F4}, train top-1 {TrainTop1:F2}%, test top-1 {Top1:F2}% (top-5 {Top5:F2}%), {ImagesPerSecond:F0} images/s");

    private static readonly Action<ILogger, string, int, int, Exception?> LogCheckpoint =
        LoggerMessage.Define<string, int, int>(LogLevel.Information, new EventId(2, "Checkpoint"), "Checkpoint written to {Path} (next epoch {Epoch}, step {Step})");

    private static readonly Action<ILogger, string, string, string, int, Exception?> LogOptionChanged =
        LoggerMessage.Define<string, string, string, int>(LogLevel.Information, new EventId(3, "OptionChanged"),
            "Resuming with {Option} = {Now} (the checkpoint was written with {Then}): applied from epoch {Epoch}");

    private static readonly Action<ILogger, string, string, Exception?> LogLeftover =
        LoggerMessage.Define<string, string>(LogLevel.Information, new EventId(5, "Leftover"), "Removed {File}, left in {Folder} by an interrupted write");

    private static readonly Action<ILogger, int, int, Exception?> LogThreadsChanged =
        LoggerMessage.Define<int, int>(LogLevel.Warning, new EventId(4, "ThreadsChanged"),
            "Resuming with {Now} CPU threads; the checkpoint was written with {Then}. The run continues correctly, but not bit-identically to an uninterrupted one (floating-point sums depend on the thread count).");

    private readonly IMultiBranchModel _model;
    private readonly IMultiBranchObjective _objective;
    private readonly IBatchAugmentation _preprocessing;
    private readonly TrainerOptions _options;
    private readonly ILogger _logger;
    private readonly Device _device;
    private readonly PrecisionPolicy _precision;
    private readonly InputFormat _input;
    private readonly optim.Optimizer _optimizer;
    private readonly IBatchReader _trainReader;
    private readonly IBatchReader _testReader;
    private readonly int _trainCount;
    private readonly int _testCount;
    private readonly List<EpochMetrics> _metrics = [];
    private readonly RunningSums _sums;

    private optim.lr_scheduler.LRScheduler? _scheduler;
    private int _schedulerSteps;
    private int _nextEpoch;
    private int _nextStep;
    private double? _bestTop1;
    private int? _bestEpoch;
    private bool _disposed;

    /// <summary>
    /// Creates a trainer: checks everything first, then moves the model and the datasets to <see cref="TrainerOptions.Device"/>
    /// and converts the model to <see cref="TrainerOptions.Precision"/>. If construction fails, the model is left as it was.
    /// </summary>
    /// <param name="model">The multi-branch model, a TorchSharp module (not owned).</param>
    /// <param name="objective">The training objective (not owned), for example a <see cref="DualTeacherLoss"/>.</param>
    /// <param name="train">The training set (not owned); its sample indices are what the objective sees.</param>
    /// <param name="test">The test set evaluated after every epoch (not owned).</param>
    /// <param name="preprocessing">Training augmentation and test normalisation.</param>
    /// <param name="options">The recipe; validated and copied here (later changes to it do not reach the trainer).</param>
    /// <param name="logger">Receives a line per epoch and per checkpoint.</param>
    /// <exception cref="ArgumentException">An option, the data, the model or the optimizer does not fit; the message says which. The model is unchanged.</exception>
    public Trainer(
        IMultiBranchModel model,
        IMultiBranchObjective objective,
        IImageSource train,
        IImageSource test,
        IBatchAugmentation preprocessing,
        TrainerOptions options,
        ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(objective);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(preprocessing);
        ArgumentNullException.ThrowIfNull(options);
        options = options.Clone();
        options.Validate();
        if (model is not nn.Module module)
        {
            throw new ArgumentException($"The model must be a TorchSharp module (nn.Module<Tensor, MultiBranchOutput>); {model.GetType().Name} is not.", nameof(model));
        }

        if (train.Shape.Channels != preprocessing.Mean.Count || test.Shape.Channels != train.Shape.Channels)
        {
            throw new ArgumentException(
                $"The preprocessing normalises {preprocessing.Mean.Count} channels; the training set has {train.Shape.Channels} and the test set {test.Shape.Channels}.",
                nameof(preprocessing));
        }

        if (train.ClassCount != test.ClassCount || model.ClassCount != train.ClassCount)
        {
            throw new ArgumentException(
                $"The model predicts {model.ClassCount} classes; the training set has {train.ClassCount} and the test set {test.ClassCount}.", nameof(train));
        }

        if (options.BatchSize > train.Count)
        {
            throw new ArgumentException(
                $"BatchSize {options.BatchSize} is larger than the training set ({train.Count} samples); at most {train.Count}.", nameof(options));
        }

        _device = options.Device ?? CPU;
        CheckStepMemory(model, preprocessing.OutputShape(train.Shape), options, _device);

        _model = model;
        _objective = objective;
        _preprocessing = preprocessing;
        _options = options;
        _logger = logger ?? NullLogger.Instance;
        _trainCount = train.Count;
        _testCount = test.Count;

        // From here on the model changes; a failure puts it back where and how it was.
        var home = model.parameters().FirstOrDefault()?.device ?? CPU;
        var channelsLast = options.ChannelsLast && options.Precision != TrainingPrecision.Float64;
        _precision = new PrecisionPolicy(options.Precision, _device, options.AllowTf32, channelsLast);
        _input = new InputFormat(_precision.WeightType, channelsLast);
        try
        {
            module.to(_device);
            var parameters = _precision.Prepare(model);
            _optimizer = options.Optimizer?.Invoke(parameters) ?? options.CreateDefaultOptimizer(parameters);
            if (_optimizer is not OptimizerHelper)
            {
                throw new ArgumentException(
                    $"The optimizer {_optimizer.GetType().Name} cannot save its state for checkpoints; use a TorchSharp optimizer (they derive from OptimizerHelper).",
                    nameof(options));
            }
        }
        catch
        {
            _precision.Undo(model);
            _precision.Dispose();
            module.to(home);
            throw;
        }

        _trainReader = train.OpenReader(_device);
        _testReader = test.OpenReader(_device);
        _sums = new RunningSums(_device);
    }

    /// <summary>Hooks called during <see cref="Run"/>, in order; add yours before running.</summary>
    public IList<TrainerCallback> Callbacks { get; } = new List<TrainerCallback>();

    /// <summary>The model being trained.</summary>
    public IMultiBranchModel Model => _model;

    /// <summary>The optimizer over the model's parameters (its learning rate is the scheduler's).</summary>
    public optim.Optimizer Optimizer => _optimizer;

    /// <summary>Every completed epoch's metrics, in order.</summary>
    public IReadOnlyList<EpochMetrics> Metrics => _metrics;

    /// <summary>The 0-based epoch the next <see cref="Run"/> starts with.</summary>
    public int NextEpoch => _nextEpoch;

    /// <summary>The step within <see cref="NextEpoch"/> the next <see cref="Run"/> starts with (non-zero after a mid-epoch checkpoint).</summary>
    public int NextStep => _nextStep;

    /// <summary>Steps in an epoch of the default order (N samples, <see cref="TrainerOptions.BatchSize"/>, <see cref="TrainerOptions.DropLast"/>).</summary>
    public int StepsPerEpoch => StepsFor(_trainCount);

    /// <summary>Trains until the last epoch, or until <paramref name="cancellationToken"/> fires (checked before every step).</summary>
    /// <param name="cancellationToken">Stops at the next step boundary; with a checkpoint folder set, <c>last.ckpt</c> is written first so the run resumes there.</param>
    /// <exception cref="TrainingDivergedException">The loss became NaN or infinite.</exception>
    public TrainingResult Run(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);

        // One run per folder; holding it, the temporary files a killed run left there are surely stale.
        using var folder = _options.CheckpointDirectory is { } directory ? RunLock.Acquire(directory) : null;
        if (folder is not null)
        {
            foreach (var leftover in AtomicFile.RemoveLeftovers(folder.Directory))
            {
                LogLeftover(_logger, leftover, folder.Directory, null);
            }
        }

        using var precision = _precision.Activate();
        StartScheduler();
        Notify(c => c.OnTrainStart(this));
        for (var epoch = _nextEpoch; epoch < _options.Epochs; epoch++)
        {
            var lr = _optimizer.ParamGroups.First().LearningRate;
            _model.train();
            var clock = Stopwatch.StartNew();

            using var order = EpochOrder(epoch);
            var steps = StepsFor((int)order.shape[0]);
            // Not the run's token: the run stops at a step boundary, checked below, and a reader that is stopped instead
            // would throw out of the step it is reading.
            using var batches = _trainReader.Read(order, _options.BatchSize, _nextStep, CancellationToken.None).GetEnumerator();
            for (var step = _nextStep; step < steps; step++)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    _sums.Seconds += clock.Elapsed.TotalSeconds;
                    _nextEpoch = epoch;
                    _nextStep = step;
                    WriteCheckpoint("last.ckpt");
                    return Finish(cancelled: true);
                }

                if (!batches.MoveNext())
                {
                    throw new InvalidOperationException($"The training set's reader ended at step {step} of {steps} in epoch {epoch}.");
                }

                using (var batch = batches.Current)
                {
                    TrainStep(batch, epoch, steps, lr);
                }

                var done = step + 1;
                if (done % _options.LogInterval == 0 && done < steps)
                {
                    CheckFinite(epoch);
                    var running = Running(epoch, done, steps, _sums.Seconds + clock.Elapsed.TotalSeconds);
                    Notify(c => c.OnProgress(this, running));
                }
            }

            CheckFinite(epoch);
            var seconds = _sums.Seconds + clock.Elapsed.TotalSeconds;
            var end = Running(epoch, steps, steps, seconds);
            if (_options.SchedulerInterval == SchedulerInterval.Epoch)
            {
                StepScheduler();
            }

            var metrics = CompleteEpoch(epoch, lr, seconds);
            var completed = new TrainingProgress(end.Epoch, end.TotalEpochs, end.Step, end.StepsPerEpoch, end.RunningLoss, end.RunningTop1, end.ImagesPerSecond, metrics);
            Notify(c => c.OnProgress(this, completed));
            Notify(c => c.OnEpochEnd(this, metrics));
            LogEpoch(_logger, epoch + 1, metrics.TrainLoss, metrics.TrainTop1, metrics.BackboneTop1, metrics.TestTop5, metrics.ImagesPerSecond, null);
        }

        return Finish(cancelled: false);
    }

    /// <summary>Evaluates the model on the test set now.</summary>
    public EvaluationResult EvaluateTest()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return Evaluator.Evaluate(_model, _testReader, _testCount, _preprocessing, _options.EvalBatchSize, _input);
    }

    /// <summary>Writes a checkpoint of the whole training state (atomically: temporary file, then rename).</summary>
    /// <param name="path">The file to write; an existing one is replaced only once the new one is complete.</param>
    /// <exception cref="IOException">The file could not be written (disk full, no permission...); the message names it, and an existing file is unchanged.</exception>
    public void SaveCheckpoint(string path)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(path);
        TrainerCheckpoint.Write(path, Header(), Parts());
        LogCheckpoint(_logger, path, _nextEpoch, _nextStep, null);
        Notify(c => c.OnCheckpointSaved(this, path));
    }

    /// <summary>
    /// Restores a checkpoint written by <see cref="SaveCheckpoint"/> (or by the trainer into its checkpoint folder), so that
    /// <see cref="Run"/> continues where it stopped. Nothing is changed unless the whole checkpoint is valid and matches.
    /// </summary>
    /// <remarks>
    /// The run continues with this trainer's options: the optimizer's hyper-parameters (learning rate, momentum, weight
    /// decay...), the schedule, the number of epochs (more extends the run) and the rule for the best epoch are the ones
    /// given now, and every change is logged; the optimizer's state (momentum buffers, step counts) comes from the
    /// checkpoint. What cannot change is refused: the seed, the sample order, and inside an epoch the batch size.
    /// </remarks>
    /// <param name="path">The checkpoint file.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is truncated or corrupted, or does not match this model, objective, optimizer, data or options; the message says which.</exception>
    public void LoadCheckpoint(string path)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(path);
        var expected = Header();
        var configured = HyperParameters();
        var header = TrainerCheckpoint.Restore(path, expected, Parts(), h => CheckResumable(path, h));

        // The optimizer's state is the checkpoint's; its hyper-parameters are this run's (the scheduler starts from them).
        ApplyHyperParameters(configured);
        foreach (var (option, then, now) in header.Options.Differences(expected.Options))
        {
            LogOptionChanged(_logger, option, now, then, header.NextEpoch + 1, null);
        }

        if (header.Threads != expected.Threads)
        {
            LogThreadsChanged(_logger, expected.Threads, header.Threads, null);
        }

        _metrics.Clear();
        _metrics.AddRange(header.Metrics);
        (_bestTop1, _bestEpoch) = BestOf(_metrics);
        _nextEpoch = header.NextEpoch;
        _nextStep = header.NextStep;
        _schedulerSteps = header.SchedulerSteps;
        _sums.Restore(header.Partial);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _precision.RestoreFloat32(_model);
        _precision.Dispose();
        _optimizer.Dispose();
        _sums.Dispose();
        _trainReader.Dispose();
        _testReader.Dispose();
    }

    private void TrainStep(ImageBatch batch, int epoch, int steps, double lr)
    {
        using var scope = NewDisposeScope();
        var step = batch.Step;
        var images = _preprocessing.Augment(batch.Images, _options.Seed, epoch, step);
        using var output = _model.call(_input.Apply(images));
        using var result = Objective(output, batch.Labels, batch.Indices, epoch, step);
        _precision.ZeroGradients(_optimizer);
        _precision.BackwardAndStep(result.Total, _optimizer);
        _sums.Add(result, output.Backbone, batch.Labels, step, guardNonFinite: _precision.GuardsNonFiniteLoss);
        if (Callbacks.Count > 0)
        {
            var done = new TrainingStep(epoch, step, steps, lr, output, result, batch.Labels, batch.Indices);
            Notify(c => c.OnStepEnd(this, done));
        }

        if (_options.SchedulerInterval == SchedulerInterval.Step)
        {
            StepScheduler();
        }
    }

    /// <summary>The objective's loss; an objective that refuses non-finite logits means the training diverged.</summary>
    private MultiBranchLossResult Objective(MultiBranchOutput output, Tensor labels, Tensor indices, int epoch, int step)
    {
        try
        {
            return _objective.Compute(output, labels, indices, epoch, _options.Epochs);
        }
        catch (ArgumentException) when (output.Heads.Any(h => !h.isfinite().all().item<bool>()))
        {
            throw new TrainingDivergedException(epoch, step);
        }
    }

    /// <summary>Refuses a batch whose training step cannot fit in the memory left (CPU devices, where the system says how much that is).</summary>
    private static void CheckStepMemory(IMultiBranchModel model, ImageShape input, TrainerOptions options, Device device)
    {
        if (StepMemory.AvailableBytes(device) is not { } available || model.parameters().Any(p => p.device_type != DeviceType.CPU))
        {
            return;
        }

        var perSample = StepMemory.PerSampleBytes(model, input.Channels, input.Height, input.Width, PrecisionPolicy.WeightTypeOf(options.Precision));
        var step = StepMemory.StepBytes(perSample, options.BatchSize);
        if (step > available)
        {
            var fits = Math.Max(1, (int)(available / (double)StepMemory.StepBytes(perSample, 1)));
            throw new ArgumentException(
                $"BatchSize {options.BatchSize} needs about {StepMemory.Gigabytes(step)} for a training step of {input} images " +
                $"with this model; {StepMemory.Gigabytes(available)} of memory is available. Use a batch of at most about {fits}.", nameof(options));
        }
    }

    /// <summary>The epoch's sample order (int64 on the CPU), checked when it comes from the options; without a last, smaller batch when <see cref="TrainerOptions.DropLast"/> is set.</summary>
    private Tensor EpochOrder(int epoch)
    {
        using var scope = NewDisposeScope();
        Tensor order;
        if (_options.EpochOrder is { } custom)
        {
            order = custom(epoch) ?? throw new InvalidOperationException($"{nameof(TrainerOptions.EpochOrder)} returned null for epoch {epoch}.");
            TensorChecks.IndexVector(order, $"{nameof(TrainerOptions.EpochOrder)}({epoch})", order.dim() == 1 ? order.shape[0] : -1, _trainCount, "sample indices");
        }
        else
        {
            order = new BatchSampler(_trainCount, _options.BatchSize, _options.Seed, shuffle: true, _options.DropLast).Order(epoch);
        }

        var kept = StepsFor((int)order.shape[0]) * (long)_options.BatchSize;
        order = order.to(ScalarType.Int64, CPU);
        return (kept < order.shape[0] ? order.narrow(0, 0, kept) : order).MoveToOuterDisposeScope();
    }

    private int StepsFor(int count) => _options.DropLast ? count / _options.BatchSize : (count + _options.BatchSize - 1) / _options.BatchSize;

    /// <summary>Builds the scheduler afresh from the initial learning rates and steps it to where the run stands.</summary>
    private void StartScheduler()
    {
        foreach (var group in _optimizer.ParamGroups)
        {
            group.LearningRate = group.InitialLearningRate;
        }

        _scheduler = _options.CreateScheduler(_optimizer);
        for (var i = 0; i < _schedulerSteps; i++)
        {
            _scheduler.step();
        }
    }

    private void StepScheduler()
    {
        _scheduler!.step();
        _schedulerSteps++;
    }

    private void CheckFinite(int epoch)
    {
        var firstBad = _sums.FirstNonFiniteStep();
        if (firstBad is { } badStep)
        {
            throw new TrainingDivergedException(epoch, badStep);
        }
    }

    private TrainingProgress Running(int epoch, int step, int steps, double seconds)
    {
        var (samples, loss, top1) = _sums.Running();
        return new TrainingProgress(epoch, _options.Epochs, step, steps, loss, top1, seconds > 0 ? samples / seconds : 0, null);
    }

    private EpochMetrics CompleteEpoch(int epoch, double lr, double seconds)
    {
        var (samples, loss, top1) = _sums.Running();
        var components = _sums.ComponentMeans();
        var scalars = new Dictionary<string, double>(_sums.Scalars);
        var evaluation = Stopwatch.StartNew();
        var test = EvaluateTest();
        var metrics = new EpochMetrics(epoch, lr, scalars, loss, components, top1, test.Top1, test.Top5, test.Loss, seconds > 0 ? samples / seconds : 0, seconds,
            seconds + evaluation.Elapsed.TotalSeconds);
        _metrics.Add(metrics);
        var improved = epoch >= _options.ResolvedBestAfterEpoch && (_bestTop1 is null || metrics.BackboneTop1 > _bestTop1);
        if (improved)
        {
            _bestTop1 = metrics.BackboneTop1;
            _bestEpoch = epoch;
        }

        _sums.Reset();
        _nextEpoch = epoch + 1;
        _nextStep = 0;
        WriteCheckpoint("last.ckpt");
        if (improved)
        {
            WriteCheckpoint("best.ckpt");
        }

        return metrics;
    }

    private void WriteCheckpoint(string fileName)
    {
        if (_options.CheckpointDirectory is { } directory)
        {
            SaveCheckpoint(Path.Combine(directory, fileName));
        }
    }

    /// <summary>The best backbone top-1 over the epochs the options count, and its epoch (the first of equals).</summary>
    private (double? Top1, int? Epoch) BestOf(IEnumerable<EpochMetrics> metrics)
    {
        (double? Top1, int? Epoch) best = (null, null);
        foreach (var m in metrics.Where(m => m.Epoch >= _options.ResolvedBestAfterEpoch))
        {
            if (best.Top1 is null || m.BackboneTop1 > best.Top1)
            {
                best = (m.BackboneTop1, m.Epoch);
            }
        }

        return best;
    }

    /// <summary>Refuses to resume with what would make the continued run another run.</summary>
    private void CheckResumable(string path, CheckpointHeader header)
    {
        var then = header.Options;
        string? refused = null;
        if (then.Seed != _options.Seed)
        {
            refused = $"Seed {_options.Seed} (the run's is {then.Seed}: it decides the sample order and every augmentation draw)";
        }
        else if (then.CustomOrder != (_options.EpochOrder is not null))
        {
            refused = "EpochOrder (the run was trained in another sample order)";
        }
        else if (header.NextStep > 0 && then.BatchSize != _options.BatchSize)
        {
            refused = $"BatchSize {_options.BatchSize} inside an epoch (the run stopped at step {header.NextStep} of epoch {header.NextEpoch + 1} with batch size {then.BatchSize}; change it at an epoch boundary)";
        }
        else if (header.NextStep > 0 && then.DropLast != _options.DropLast)
        {
            refused = "DropLast inside an epoch";
        }
        else if (_options.Epochs < header.NextEpoch || (_options.Epochs == header.NextEpoch && header.NextStep > 0))
        {
            refused = $"Epochs {_options.Epochs} (the run has already trained {header.NextEpoch} epochs{(header.NextStep > 0 ? $" and {header.NextStep} steps of the next" : string.Empty)}; give at least {header.NextEpoch + (header.NextStep > 0 ? 1 : 0)})";
        }

        if (refused is not null)
        {
            throw new InvalidDataException($"Cannot resume '{path}' with {refused}.");
        }
    }

    /// <summary>The optimizer's configured hyper-parameters, group by group, in TorchSharp's own format.</summary>
    private byte[][] HyperParameters() => [.. _optimizer.ParamGroups.Cast<ParamGroup>().Select(group =>
    {
        using var buffer = new MemoryStream();
        using (var writer = new BinaryWriter(buffer, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            group.Options.SaveStateDict(writer);
        }

        return buffer.ToArray();
    })];

    private void ApplyHyperParameters(byte[][] saved)
    {
        foreach (var (group, bytes) in _optimizer.ParamGroups.Cast<ParamGroup>().Zip(saved))
        {
            using var reader = new BinaryReader(new MemoryStream(bytes), System.Text.Encoding.UTF8);
            group.Options.LoadStateDict(reader);
        }
    }

    private TrainingResult Finish(bool cancelled)
    {
        var result = new TrainingResult([.. _metrics], _bestTop1, _bestEpoch, _metrics.Count > 0 ? _metrics[^1].BackboneTop1 : null, cancelled);
        Notify(c => c.OnTrainEnd(this, result));
        return result;
    }

    private void Notify(Action<TrainerCallback> hook)
    {
        foreach (var callback in Callbacks)
        {
            hook(callback);
        }
    }

    private CheckpointHeader Header() => new(
        ModelType: _model.GetType().FullName ?? _model.GetType().Name,
        Objective: _objective.Name,
        Optimizer: _optimizer.GetType().Name,
        Precision: _options.Precision.ToString(),
        TrainCount: _trainCount,
        TestCount: _testCount,
        ModelState: TrainerCheckpoint.Describe(_precision.CheckpointState(_model)),
        Options: OptionsSnapshot.From(_options),
        Threads: get_num_threads(),
        SchedulerSteps: _schedulerSteps,
        NextEpoch: _nextEpoch,
        NextStep: _nextStep,
        Partial: _nextStep > 0 ? _sums.Snapshot() : null,
        BestTop1: _bestTop1,
        BestEpoch: _bestEpoch,
        Metrics: [.. _metrics],
        SavedUtc: DateTime.UtcNow);

    private TrainerCheckpoint.Parts Parts() => new(_model, _optimizer, _objective, _precision);
}
