using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// Where a run stands (the next epoch and step) and what makes it this run: the model, objective, optimizer, precision,
/// data sizes and options a checkpoint records. Its resume rules say what a checkpoint must match and what may change.
/// </summary>
internal sealed class RunState
{
    private readonly RunIdentity _identity;
    private readonly TrainerOptions _options;

    public RunState(RunIdentity identity, TrainerOptions options)
    {
        _identity = identity;
        _options = options;
    }

    /// <summary>The 0-based epoch the next run starts with.</summary>
    public int NextEpoch { get; private set; }

    /// <summary>The step within <see cref="NextEpoch"/> the next run starts with (non-zero after a stop inside an epoch).</summary>
    public int NextStep { get; private set; }

    public bool MidEpoch => NextStep > 0;

    /// <summary>The run stopped before <paramref name="step"/> of <paramref name="epoch"/>.</summary>
    public void StopAt(int epoch, int step) => (NextEpoch, NextStep) = (epoch, step);

    /// <summary><paramref name="epoch"/> was trained and evaluated.</summary>
    public void Completed(int epoch) => (NextEpoch, NextStep) = (epoch + 1, 0);

    /// <summary>A checkpoint's header for the run as it stands.</summary>
    public CheckpointHeader Header(Dictionary<string, string> modelState, int schedulerSteps, RunRecord record) => new(
        _identity.ModelType, _identity.Objective, _identity.Optimizer, _identity.Precision.ToString(), _identity.TrainCount, _identity.TestCount,
        modelState, OptionsSnapshot.From(_options), get_num_threads(), schedulerSteps, NextEpoch, NextStep, record.Partial(MidEpoch),
        record.BestTop1, record.BestEpoch, [.. record.Metrics], DateTime.UtcNow, WorldSize, _options.DataKey);

    /// <summary>
    /// Refuses a checkpoint of another run, or one this run cannot continue: another model (names, shapes, formats),
    /// objective, optimizer, precision or data size; another seed or sample order; a batch-size or drop-last change inside an
    /// epoch; fewer epochs than it has trained. Nothing else is checked here: what may change is <see cref="Changes"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">What does not match, naming the file.</exception>
    public void CheckResumable(string path, int version, CheckpointHeader saved, Dictionary<string, string> modelState)
    {
        var half = saved.Precision is nameof(TrainingPrecision.BFloat16) or nameof(TrainingPrecision.Float16);
        if (version < CheckpointFile.FormatVersion && half)
        {
            throw new InvalidDataException(
                $"Checkpoint '{path}' was written in {saved.Precision} by an earlier DTSKD.Core (checkpoint format {version}), whose optimizer state this version " +
                "cannot continue. Its weights still load for evaluation and export (TrainerCheckpoint.LoadModel); start a new run to train further.");
        }

        TrainerCheckpoint.CheckModel(path, saved.ModelState, modelState, compareTypes: true);
        if (Mismatch(saved) is { } other)
        {
            throw new InvalidDataException($"Checkpoint '{path}' was written {other}.");
        }

        if (Unresumable(saved) is { } refused)
        {
            throw new InvalidDataException($"Cannot resume '{path}' with {refused}.");
        }
    }

    /// <summary>What the continued run changes (option, the checkpoint's value, this run's), and whether the CPU thread count changed.</summary>
    public (IReadOnlyList<(string Option, string Then, string Now)> Options, int? ThreadsThen) Changes(CheckpointHeader saved) =>
        ([.. saved.Options.Differences(OptionsSnapshot.From(_options))], saved.Threads != get_num_threads() ? saved.Threads : null);

    /// <summary>Continues at the checkpoint's position.</summary>
    /// <summary>The ranks training together (1 for one process).</summary>
    private int WorldSize => _options.ProcessGroup?.WorldSize ?? 1;

    public void Restore(CheckpointHeader saved) => (NextEpoch, NextStep) = (saved.NextEpoch, saved.NextStep);

    private string? Mismatch(CheckpointHeader saved)
    {
        // Equal counts are not the same data: the historical teacher's rows belong to the samples the run read.
        if (saved.DataKey is not null && _options.DataKey is not null && saved.DataKey != _options.DataKey)
        {
            return $"for data '{saved.DataKey}'; this trainer's is '{_options.DataKey}' (TrainerOptions.DataKey): the historical teacher's rows belong to other samples";
        }

        if (saved.Objective != _identity.Objective)
        {
            return $"with objective '{saved.Objective}', this trainer uses '{_identity.Objective}'";
        }

        if (saved.Optimizer != _identity.Optimizer || saved.Precision != _identity.Precision.ToString())
        {
            return $"with optimizer {saved.Optimizer} in {saved.Precision} precision; this trainer uses {_identity.Optimizer} in {_identity.Precision}";
        }

        return saved.TrainCount != _identity.TrainCount || saved.TestCount != _identity.TestCount
            ? $"for {saved.TrainCount} training and {saved.TestCount} test samples; this trainer has {_identity.TrainCount} and {_identity.TestCount}"
            : null;
    }

    private static string Layout(string? fineTuning) => fineTuning?.Split(';')[0] ?? "none";

    private string? Unresumable(CheckpointHeader saved)
    {
        var then = saved.Options;
        var stepsNote = saved.NextStep > 0 ? $" and {saved.NextStep} steps of the next" : string.Empty;
        return saved.WorldSize != WorldSize
                ? $"{WorldSize} rank{(WorldSize == 1 ? "" : "s")} (the run trained with {saved.WorldSize}: each rank's historical teacher holds its own samples' rows; resume with {saved.WorldSize})"
            : then.Seed != _options.Seed ? $"Seed {_options.Seed} (the run's is {then.Seed}: it decides the sample order and every augmentation draw)"
            : then.CustomOrder != (_options.EpochOrder is not null) ? "EpochOrder (the run was trained in another sample order)"
            : Layout(then.FineTuning) != Layout(_options.FineTuning?.Describe())
                ? $"FineTuning {Layout(_options.FineTuning?.Describe())} (the run trained with {Layout(then.FineTuning)}: its optimizer holds other parameters; the learning-rate factor, warm-up and batch-norm freezing may change)"
            : saved.NextStep > 0 && then.BatchSize != _options.BatchSize
                ? $"BatchSize {_options.BatchSize} inside an epoch (the run stopped at step {saved.NextStep} of epoch {saved.NextEpoch + 1} with batch size {then.BatchSize}; change it at an epoch boundary)"
            : saved.NextStep > 0 && then.DropLast != _options.DropLast ? "DropLast inside an epoch"
            : _options.Epochs < saved.NextEpoch || (_options.Epochs == saved.NextEpoch && saved.NextStep > 0)
                ? $"Epochs {_options.Epochs} (the run has already trained {saved.NextEpoch} epochs{stepsNote}; give at least {saved.NextEpoch + (saved.NextStep > 0 ? 1 : 0)})"
            : null;
    }
}

/// <summary>What makes a checkpoint this run's, besides its options.</summary>
internal sealed record RunIdentity(string ModelType, string Objective, string Optimizer, TrainingPrecision Precision, int TrainCount, int TestCount);
