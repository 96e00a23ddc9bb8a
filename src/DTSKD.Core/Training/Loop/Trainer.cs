using DTSKD.Core.Data;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
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
    private readonly IBatchAugmentation _preprocessing;
    private readonly TrainerOptions _options;
    private readonly ILogger _logger;
    private readonly Parts _parts;
    private readonly IBatchReader _trainReader;
    private readonly IBatchReader _testReader;
    private readonly int _testCount;
    private readonly EpochLoop _loop;
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
        _options = TrainerInputs.Check(model, objective, train, test, preprocessing, options);
        (Model, _preprocessing, _testCount) = (model, preprocessing, test.Count);

        // Rank 0 speaks for the run; the other ranks' logs would repeat it.
        _logger = _options.ProcessGroup is { Rank: > 0 } ? NullLogger.Instance : logger ?? NullLogger.Instance;
        var device = _options.Device ?? CPU;
        var order = new EpochOrder(train.Count, _options, _options.ProcessGroup ?? SingleProcessGroup.Instance);

        // From here on the model changes; a failed step construction puts it back where and how it was.
        var step = OptimizationStep.Create(model, objective, preprocessing, _options, device, order);
        var identity = new RunIdentity(model.GetType().FullName ?? model.GetType().Name, objective.Name, step.Optimizer.GetType().Name, _options.Precision, train.Count, test.Count);
        _parts = new Parts(step, new LearningRateSchedule(step.Optimizer, _options), order, new RunState(identity, _options), new RunRecord(_options, device), objective);
        _trainReader = train.OpenReader(device);
        _testReader = test.OpenReader(device);
        _loop = new EpochLoop(new EpochHooks(WriteCheckpoint, EvaluateTest, hook => Notify(c => hook(c, this)), () => Callbacks.Count > 0), _parts, _trainReader, _options, _logger);
    }

    /// <summary>Hooks called during <see cref="Run"/>, in order; add yours before running.</summary>
    public IList<TrainerCallback> Callbacks { get; } = new List<TrainerCallback>();

    /// <summary>The model being trained.</summary>
    public IMultiBranchModel Model { get; }

    /// <summary>The optimizer over the model's parameters (its learning rate is the scheduler's).</summary>
    public optim.Optimizer Optimizer => _parts.Step.Optimizer;

    /// <summary>Every completed epoch's metrics, in order.</summary>
    public IReadOnlyList<EpochMetrics> Metrics => _parts.Record.Metrics;

    /// <summary>The 0-based epoch the next <see cref="Run"/> starts with.</summary>
    public int NextEpoch => _parts.State.NextEpoch;

    /// <summary>The step within <see cref="NextEpoch"/> the next <see cref="Run"/> starts with (non-zero after a mid-epoch checkpoint).</summary>
    public int NextStep => _parts.State.NextStep;

    /// <summary>Steps in an epoch of the default order (N samples, <see cref="TrainerOptions.BatchSize"/>, <see cref="TrainerOptions.DropLast"/>).</summary>
    public int StepsPerEpoch => _parts.Order.StepsPerEpoch;

    /// <summary>Trains until the last epoch, or until <paramref name="cancellationToken"/> fires (checked before every step).</summary>
    /// <param name="cancellationToken">Stops at the next step boundary; with a checkpoint folder set, <c>last.ckpt</c> is written first so the run resumes there.</param>
    /// <exception cref="TrainingDivergedException">The loss became NaN or infinite.</exception>
    /// <exception cref="TrainingDataException">The training or test set could not be read mid-run; <c>last.ckpt</c> was written at the last finished step first.</exception>
    public TrainingResult Run(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);

        // One run per folder; holding it, the temporary files a killed run left there are surely stale.
        // Rank 0 alone writes the folder; the other ranks only read it (a resume).
        using var folder = _options.CheckpointDirectory is { } directory && _parts.Step.Group.Rank == 0 ? RunLock.Acquire(directory) : null;
        foreach (var leftover in folder is null ? [] : AtomicFile.RemoveLeftovers(folder.Directory))
        {
            TrainerLog.Leftover(_logger, leftover, folder!.Directory, null);
        }

        using var precision = _parts.Step.Precision.Activate();
        ReplicaSync.Everything(Model, _parts.Step.Group);
        using var norms = _options.SyncBatchNorm ? Training.SyncBatchNorm.Attach(Model.modules(), _parts.Step.Group) : null;
        _parts.Schedule.Start();
        Notify(c => c.OnTrainStart(this));
        var result = _loop.Run(cancellationToken);
        Notify(c => c.OnTrainEnd(this, result));
        return result;
    }

    /// <summary>Evaluates the model on the test set now.</summary>
    /// <remarks>
    /// With several ranks (<see cref="TrainerOptions.ProcessGroup"/>) it is collective: rank 0's batch-norm statistics reach
    /// every rank, each evaluates its share of the test set (every <c>WorldSize</c>-th image) and every rank returns the
    /// whole set's figures.
    /// </remarks>
    public EvaluationResult EvaluateTest()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var group = _parts.Step.Group;

        // After an epoch's last step each rank holds the running statistics of its own batches; one copy is evaluated.
        ReplicaSync.Buffers(Model, group);
        return Evaluator.Evaluate(Model, _testReader, _testCount, _preprocessing, _options.EvalBatchSize, _parts.Step.Input, group);
    }

    /// <summary>Writes a checkpoint of the whole training state (atomically: temporary file, then rename).</summary>
    /// <param name="path">The file to write; an existing one is replaced only once the new one is complete.</param>
    /// <exception cref="IOException">The file could not be written (disk full, no permission...); the message names it, and an existing file is unchanged.</exception>
    /// <remarks>
    /// With several ranks (<see cref="TrainerOptions.ProcessGroup"/>) it is collective: every rank calls it, every rank's
    /// historical-teacher rows go into rank 0's file (as sections of their own), rank 0 alone writes, and no rank returns
    /// before the file is in place. <see cref="LoadCheckpoint"/> then reads the same file on every rank (a shared file
    /// system, as clusters have), each rank its own rows; a run resumes with the rank count it was written with.
    /// </remarks>
    public void SaveCheckpoint(string path)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(path);
        var group = _parts.Step.Group;
        var parts = _parts.Checkpointed(Model);
        if (group.WorldSize > 1)
        {
            // Collective: every rank's history rows reach rank 0, which alone writes the file.
            parts = parts with { RankObjectives = RankStates.Gather(group, _parts.Objective.SaveState) };
        }

        try
        {
            if (group.Rank == 0)
            {
                TrainerCheckpoint.Write(path, _parts.State.Header(ModelState(), _parts.Schedule.Steps, _parts.Record), parts);
            }
        }
        finally
        {
            // No rank goes on (to a resume that reads the file, say) before rank 0 has renamed it into place.
            if (group.WorldSize > 1)
            {
                group.Barrier();
            }
        }

        if (group.Rank != 0)
        {
            return;
        }

        TrainerLog.Checkpoint(_logger, path, NextEpoch, NextStep, null);
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
        var configured = _parts.Schedule.Configured();
        var modelState = ModelState();
        var saved = TrainerCheckpoint.Restore(path, _parts.Checkpointed(Model) with { Rank = _parts.Step.Group.Rank }, (version, header) => _parts.State.CheckResumable(path, version, header, modelState));

        // The optimizer's state is the checkpoint's; its hyper-parameters are this run's (the scheduler starts from them).
        _parts.Schedule.Restore(saved.SchedulerSteps, configured);
        var (options, threadsThen) = _parts.State.Changes(saved);
        foreach (var (option, then, now) in options)
        {
            TrainerLog.OptionChanged(_logger, option, now, then, saved.NextEpoch + 1, null);
        }

        if (threadsThen is { } threads)
        {
            TrainerLog.ThreadsChanged(_logger, get_num_threads(), threads, null);
        }

        // An interrupted epoch's sums are every rank's together (summed before saving): rank 0 carries them on.
        _parts.Record.Restore(saved.Metrics, _parts.Step.Group.Rank == 0 ? saved.Partial : null);
        _parts.State.Restore(saved);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _parts.Step.Dispose();
        _parts.Record.Dispose();
        _trainReader.Dispose();
        _testReader.Dispose();
    }

    /// <summary>Writes <paramref name="fileName"/> into the checkpoint folder, when there is one; returns its path, or null.</summary>
    private string? WriteCheckpoint(string fileName)
    {
        if (_options.CheckpointDirectory is not { } directory)
        {
            return null;
        }

        var path = Path.Combine(directory, fileName);
        SaveCheckpoint(path);
        return path;
    }

    private void Notify(Action<TrainerCallback> hook)
    {
        foreach (var callback in Callbacks)
        {
            hook(callback);
        }
    }

    private Dictionary<string, string> ModelState() => TrainerCheckpoint.Describe(_parts.Step.Precision.CheckpointState(Model));

    /// <summary>The engine's rooms: the step, the schedule, the order, where the run stands and what it measured.</summary>
    internal sealed record Parts(OptimizationStep Step, LearningRateSchedule Schedule, EpochOrder Order, RunState State, RunRecord Record, IMultiBranchObjective Objective)
    {
        /// <summary>What a checkpoint holds state for.</summary>
        public TrainerCheckpoint.Parts Checkpointed(IMultiBranchModel model) => new(model, Step.Optimizer, Objective, Step.Precision);
    }
}
