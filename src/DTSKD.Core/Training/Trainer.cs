using System.Diagnostics;
using System.Text.Json;
using DTSKD.Core.Data;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// Trains a multi-branch model with any <see cref="IMultiBranchObjective"/>: SGD with a multi-step learning
/// rate, seeded shuffling and on-device augmentation, per-head evaluation after every epoch, and checkpoints
/// from which a run resumes exactly.
/// </summary>
/// <remarks>
/// <para>
/// Every random draw is a function of (<see cref="TrainerOptions.Seed"/>, epoch, step), so a CPU run resumed
/// from a checkpoint, even one written mid-epoch on cancellation, gives the same numbers as an uninterrupted
/// one. Seed the model's initialisation yourself (<c>torch.manual_seed</c>) before building it.
/// </para>
/// <para>
/// Each step runs in its own dispose scope; the trainer owns the optimizer, the device copies of the
/// datasets and its running sums, and frees them on <see cref="Dispose"/>. It does not own the model,
/// the objective or the datasets. Create the trainer after building the model and do not move the model
/// afterwards: the optimizer holds its parameters. With a half <see cref="TrainerOptions.Precision"/>, the
/// model's convolution and linear weights are in that format while the trainer lives; disposing the trainer
/// puts them back in float32, with the optimizer's float32 master values.
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

    private static readonly Action<ILogger, string, string, string, Exception?> LogOptionChanged =
        LoggerMessage.Define<string, string, string>(LogLevel.Warning, new EventId(3, "OptionChanged"), "Resuming with {Option} = {Now}; the checkpoint was written with {Then}");

    private readonly nn.Module<Tensor, MultiBranchOutput> _model;
    private readonly IMultiBranchObjective _objective;
    private readonly BatchAugmentation _preprocessing;
    private readonly TrainerOptions _options;
    private readonly ILogger _logger;
    private readonly Device _device;
    private readonly FlatSgd _optimizer;
    private readonly DynamicLossScaler? _scaler;
    private readonly ScalarType? _halfType;
    private readonly BatchSampler _sampler;
    private readonly Tensor _trainImages;
    private readonly Tensor _trainLabels;
    private readonly Tensor _testImages;
    private readonly Tensor _testLabels;
    private readonly bool _ownsDeviceData;
    private readonly int _trainCount;
    private readonly int _testCount;
    private readonly List<EpochMetrics> _metrics = [];
    private readonly RunningSums _sums;

    private int _nextEpoch;
    private int _nextStep;
    private double? _bestTop1;
    private int? _bestEpoch;
    private bool _disposed;

    /// <summary>Creates a trainer and moves the model and the datasets to <see cref="TrainerOptions.Device"/>.</summary>
    /// <param name="model">The multi-branch model (not owned).</param>
    /// <param name="objective">The training objective (not owned), for example a <see cref="DualTeacherLoss"/>.</param>
    /// <param name="train">The training set (not owned); its sample indices are what the objective sees.</param>
    /// <param name="test">The test set evaluated after every epoch (not owned).</param>
    /// <param name="preprocessing">Training augmentation and test normalisation.</param>
    /// <param name="options">The recipe; validated here.</param>
    /// <param name="logger">Receives a line per epoch and per checkpoint.</param>
    public Trainer(
        nn.Module<Tensor, MultiBranchOutput> model,
        IMultiBranchObjective objective,
        ImageDataset train,
        ImageDataset test,
        BatchAugmentation preprocessing,
        TrainerOptions options,
        ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(objective);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(preprocessing);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (train.Channels != preprocessing.Mean.Count || test.Channels != train.Channels)
        {
            throw new ArgumentException(
                $"The preprocessing normalises {preprocessing.Mean.Count} channels; the training set has {train.Channels} and the test set {test.Channels}.",
                nameof(preprocessing));
        }

        if (train.ClassCount != test.ClassCount)
        {
            throw new ArgumentException($"The training set has {train.ClassCount} classes but the test set has {test.ClassCount}.", nameof(test));
        }

        _model = model;
        _objective = objective;
        _preprocessing = preprocessing;
        _options = options;
        _logger = logger ?? NullLogger.Instance;
        _device = options.Device ?? CPU;
        _trainCount = train.Count;
        _testCount = test.Count;

        model.to(_device);
        if (_device.type == DeviceType.CUDA)
        {
            torch.backends.cuda.matmul.allow_tf32 = options.AllowTf32;
            torch.backends.cudnn.allow_tf32 = options.AllowTf32;
        }

        _halfType = options.Precision switch
        {
            TrainingPrecision.BFloat16 => ScalarType.BFloat16,
            TrainingPrecision.Float16 => ScalarType.Float16,
            _ => null,
        };
        if (_halfType is { } half)
        {
            MixedPrecision.ConvertWeights(model, half);
        }

        _ownsDeviceData = _device.type != DeviceType.CPU;
        _trainImages = _ownsDeviceData ? train.Images.to(_device).DetachFromDisposeScope() : train.Images;
        _trainLabels = _ownsDeviceData ? train.Labels.to(_device).DetachFromDisposeScope() : train.Labels;
        _testImages = _ownsDeviceData ? test.Images.to(_device).DetachFromDisposeScope() : test.Images;
        _testLabels = _ownsDeviceData ? test.Labels.to(_device).DetachFromDisposeScope() : test.Labels;

        _optimizer = new FlatSgd(model.parameters(), options.LearningRate, options.Momentum, options.WeightDecay, options.Nesterov);
        _scaler = options.Precision == TrainingPrecision.Float16 ? new DynamicLossScaler(_device) : null;
        _sampler = new BatchSampler(train.Count, options.BatchSize, options.Seed, shuffle: true, options.DropLast);
        _sums = new RunningSums(_device);
    }

    /// <summary>Every completed epoch's metrics, in order.</summary>
    public IReadOnlyList<EpochMetrics> Metrics => _metrics;

    /// <summary>The 0-based epoch the next <see cref="Run"/> starts with.</summary>
    public int NextEpoch => _nextEpoch;

    /// <summary>The step within <see cref="NextEpoch"/> the next <see cref="Run"/> starts with (non-zero after a mid-epoch checkpoint).</summary>
    public int NextStep => _nextStep;

    /// <summary>Steps in an epoch.</summary>
    public int StepsPerEpoch => _sampler.StepsPerEpoch;

    /// <summary>Trains until the last epoch, or until <paramref name="cancellationToken"/> fires (checked before every step).</summary>
    /// <param name="progress">Receives step reports every <see cref="TrainerOptions.LogInterval"/> steps and one per epoch.</param>
    /// <param name="cancellationToken">Stops at the next step boundary; with a checkpoint folder set, <c>last.ckpt</c> is written first so the run resumes there.</param>
    /// <exception cref="TrainingDivergedException">The loss became NaN or infinite.</exception>
    public TrainingResult Run(IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        for (var epoch = _nextEpoch; epoch < _options.Epochs; epoch++)
        {
            var lr = _options.LearningRateAt(epoch);
            _optimizer.LearningRate = lr;

            _model.train();
            var clock = Stopwatch.StartNew();

            // The epoch's order lives on the device: each step slices it, with no copy from the host.
            using var order = _sampler.Order(epoch);
            using var deviceOrder = order.to(_device);
            for (var step = _nextStep; step < _sampler.StepsPerEpoch; step++)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    _sums.Seconds += clock.Elapsed.TotalSeconds;
                    _nextEpoch = epoch;
                    _nextStep = step;
                    WriteCheckpoint("last.ckpt");
                    return Result(cancelled: true);
                }

                TrainStep(deviceOrder, epoch, step);
                var done = step + 1;
                if (done % _options.LogInterval == 0 && done < _sampler.StepsPerEpoch)
                {
                    CheckFinite(epoch);
                    progress?.Report(Running(epoch, done, _sums.Seconds + clock.Elapsed.TotalSeconds));
                }
            }

            CheckFinite(epoch);
            var seconds = _sums.Seconds + clock.Elapsed.TotalSeconds;
            var running = Running(epoch, _sampler.StepsPerEpoch, seconds);
            var metrics = CompleteEpoch(epoch, lr, seconds);
            progress?.Report(running with { Completed = metrics });
            LogEpoch(_logger, epoch + 1, metrics.TrainLoss, metrics.TrainTop1, metrics.BackboneTop1, metrics.TestTop5, metrics.ImagesPerSecond, null);
        }

        return Result(cancelled: false);
    }

    /// <summary>Evaluates the model on the test set now.</summary>
    public EvaluationResult EvaluateTest()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return Evaluator.Evaluate(_model, _testImages, _testLabels, _preprocessing, _options.EvalBatchSize, _halfType);
    }

    /// <summary>Writes a checkpoint of the whole training state (atomically: temporary file, then rename).</summary>
    /// <param name="path">The file to write; an existing one is replaced only once the new one is complete.</param>
    public void SaveCheckpoint(string path)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(path);
        var header = new CheckpointHeader(
            ModelType: _model.GetType().FullName ?? _model.GetType().Name,
            Objective: _objective.Name,
            TrainCount: _trainCount,
            TestCount: _testCount,
            ModelState: _model.state_dict().ToDictionary(kv => kv.Key, kv => $"{kv.Value.dtype}[{string.Join(",", kv.Value.shape)}]"),
            Options: OptionsSnapshot.From(_options),
            NextEpoch: _nextEpoch,
            NextStep: _nextStep,
            Partial: _nextStep > 0 ? _sums.Snapshot() : null,
            BestTop1: _bestTop1,
            BestEpoch: _bestEpoch,
            Metrics: [.. _metrics],
            SavedUtc: DateTime.UtcNow);
        CheckpointFile.Write(path, JsonSerializer.Serialize(header), [
            ("model", WriteModel),
            ("optimizer", s =>
            {
                using var w = new BinaryWriter(s, System.Text.Encoding.UTF8, leaveOpen: true);
                _optimizer.Save(w);
            }),
            ("objective", _objective.SaveState),
            ("scaler", s =>
            {
                using var w = new BinaryWriter(s, System.Text.Encoding.UTF8, leaveOpen: true);
                w.Write(_scaler is not null);
                _scaler?.Save(w);
            }),
        ]);
        LogCheckpoint(_logger, path, _nextEpoch, _nextStep, null);
    }

    /// <summary>
    /// Restores a checkpoint written by <see cref="SaveCheckpoint"/> (or by the trainer into its checkpoint folder), so that
    /// <see cref="Run"/> continues where it stopped. Nothing is changed unless the whole checkpoint is valid and matches.
    /// </summary>
    /// <param name="path">The checkpoint file.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is truncated or corrupted, or does not match this model, objective or data; the message says which.</exception>
    public void LoadCheckpoint(string path)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(path);
        var (json, sections) = CheckpointFile.Read(path);
        var header = JsonSerializer.Deserialize<CheckpointHeader>(json)
                     ?? throw new InvalidDataException($"Checkpoint '{path}' has an empty header.");
        foreach (var name in new[] { "model", "optimizer", "objective", "scaler" })
        {
            if (!sections.ContainsKey(name))
            {
                throw new InvalidDataException($"Checkpoint '{path}' has no '{name}' section.");
            }
        }

        var live = _model.state_dict();
        var expected = live.ToDictionary(kv => kv.Key, kv => $"{kv.Value.dtype}[{string.Join(",", kv.Value.shape)}]");
        var problems = expected.Keys.Except(header.ModelState.Keys).Select(k => $"missing {k}")
            .Concat(header.ModelState.Keys.Except(expected.Keys).Select(k => $"unexpected {k}"))
            .Concat(expected.Keys.Intersect(header.ModelState.Keys).Where(k => expected[k] != header.ModelState[k])
                .Select(k => $"{k}: checkpoint {header.ModelState[k]}, model {expected[k]}"))
            .ToList();
        if (problems.Count > 0)
        {
            throw new InvalidDataException(
                $"Checkpoint '{path}' does not match this model ({problems.Count} differences): {string.Join("; ", problems.Take(10))}.");
        }

        if (header.Objective != _objective.Name)
        {
            throw new InvalidDataException($"Checkpoint '{path}' was written with objective '{header.Objective}', this trainer uses '{_objective.Name}'.");
        }

        if (header.TrainCount != _trainCount || header.TestCount != _testCount)
        {
            throw new InvalidDataException(
                $"Checkpoint '{path}' was written for {header.TrainCount} training and {header.TestCount} test samples; this trainer has {_trainCount} and {_testCount}.");
        }

        if (header.NextStep > 0 && header.Options.BatchSize != _options.BatchSize)
        {
            throw new InvalidDataException(
                $"Checkpoint '{path}' stopped inside an epoch with batch size {header.Options.BatchSize}; resume it with the same batch size (this trainer has {_options.BatchSize}).");
        }

        // Everything is validated: read the model tensors into temporaries, then apply all parts.
        var loaded = ReadModel(sections["model"], live);
        try
        {
            using (var noGrad = no_grad())
            {
                foreach (var (name, tensor) in loaded)
                {
                    live[name].copy_(tensor);
                }
            }

            using (var reader = new BinaryReader(new MemoryStream(sections["optimizer"]), System.Text.Encoding.UTF8))
            {
                _optimizer.Load(reader);
            }

            using (var objective = new MemoryStream(sections["objective"]))
            {
                _objective.LoadState(objective);
            }

            using (var reader = new BinaryReader(new MemoryStream(sections["scaler"]), System.Text.Encoding.UTF8))
            {
                if (reader.ReadBoolean())
                {
                    _scaler?.Load(reader);
                }
            }
        }
        finally
        {
            foreach (var tensor in loaded.Values)
            {
                tensor.Dispose();
            }
        }

        foreach (var (option, then, now) in header.Options.Differences(OptionsSnapshot.From(_options)))
        {
            LogOptionChanged(_logger, option, now, then, null);
        }

        _metrics.Clear();
        _metrics.AddRange(header.Metrics);
        _bestTop1 = header.BestTop1;
        _bestEpoch = header.BestEpoch;
        _nextEpoch = header.NextEpoch;
        _nextStep = header.NextStep;
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
        if (_halfType is not null)
        {
            RestoreFloat32Weights();
        }

        _optimizer.Dispose();
        _scaler?.Dispose();
        _sums.Dispose();
        if (_ownsDeviceData)
        {
            _trainImages.Dispose();
            _trainLabels.Dispose();
            _testImages.Dispose();
            _testLabels.Dispose();
        }
    }

    /// <summary>Gives the model back in float32, with the optimizer's float32 master weights (not their rounded copies).</summary>
    private void RestoreFloat32Weights()
    {
        var names = new Dictionary<object, string>(ReferenceEqualityComparer.Instance);
        foreach (var (name, parameter) in _model.named_parameters())
        {
            names[parameter] = name;
        }

        var masters = _optimizer.HalfMasters().Select(h =>
        {
            using var view = h.Master;
            return (Name: names[h.Parameter], Master: view.clone().DetachFromDisposeScope());
        }).ToList();
        MixedPrecision.ConvertWeights(_model, ScalarType.Float32);
        var live = _model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var noGrad = no_grad();
        foreach (var (name, master) in masters)
        {
            live[name].copy_(master);
            master.Dispose();
        }
    }

    private void TrainStep(Tensor order, int epoch, int step)
    {
        using var scope = NewDisposeScope();
        var start = step * _options.BatchSize;
        var idx = order.narrow(0, start, Math.Min(_options.BatchSize, _trainCount - start));
        var images = _preprocessing.Augment(_trainImages.index_select(0, idx), _options.Seed, epoch, step);
        var labels = _trainLabels.index_select(0, idx);
        using var output = _model.call(_halfType is { } half ? images.to(half) : images);
        using var result = _objective.Compute(output, labels, idx, epoch, _options.Epochs);
        _optimizer.ZeroGrad();
        if (_scaler is null)
        {
            result.Total.backward();
            _optimizer.GatherGradients();
            _optimizer.Step(skip: null);
        }
        else
        {
            // float16: scale the loss, unscale the gradients, skip the step if they overflowed; all on the device.
            _scaler.ScaleLoss(result.Total).backward();
            var overflow = _scaler.Unscale(_optimizer.GatherGradients());
            _optimizer.Step(overflow);
            _scaler.Update(overflow);
        }

        // With float16, a non-finite loss is an overflow the scaler handles, not a divergence.
        _sums.Add(result, output.Backbone, labels, step, guardNonFinite: _scaler is null);
    }

    private void CheckFinite(int epoch)
    {
        var firstBad = _sums.FirstNonFiniteStep();
        if (firstBad is { } badStep)
        {
            throw new TrainingDivergedException(epoch, badStep);
        }
    }

    private TrainingProgress Running(int epoch, int step, double seconds)
    {
        var (samples, loss, top1) = _sums.Running();
        return new TrainingProgress(epoch, _options.Epochs, step, _sampler.StepsPerEpoch, loss, top1, seconds > 0 ? samples / seconds : 0, null);
    }

    private EpochMetrics CompleteEpoch(int epoch, double lr, double seconds)
    {
        var (samples, loss, top1) = _sums.Running();
        var components = _sums.ComponentMeans();
        var alpha = _sums.Alpha;
        var test = EvaluateTest();
        var metrics = new EpochMetrics(epoch, lr, alpha, loss, components, top1, test.Top1, test.Top5, test.Loss, seconds > 0 ? samples / seconds : 0, seconds);
        _metrics.Add(metrics);
        var improved = epoch >= _options.BestAfterEpoch && (_bestTop1 is null || metrics.BackboneTop1 > _bestTop1);
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

    private TrainingResult Result(bool cancelled) =>
        new([.. _metrics], _bestTop1, _bestEpoch, _metrics.Count > 0 ? _metrics[^1].BackboneTop1 : null, cancelled);

    private void WriteModel(Stream stream)
    {
        using var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        var state = _model.state_dict();
        writer.Write(state.Count);
        foreach (var (name, tensor) in state)
        {
            writer.Write(name);
            tensor.Save(writer);
        }
    }

    private static Dictionary<string, Tensor> ReadModel(byte[] section, Dictionary<string, Tensor> live)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            using var reader = new BinaryReader(new MemoryStream(section), System.Text.Encoding.UTF8);
            var count = reader.ReadInt32();
            for (var i = 0; i < count; i++)
            {
                var name = reader.ReadString();
                var tensor = zeros_like(live[name], device: CPU).DetachFromDisposeScope();
                result[name] = tensor;
                tensor.Load(reader);
            }

            return result;
        }
        catch (Exception ex) when (ex is EndOfStreamException or ArgumentException or KeyNotFoundException)
        {
            foreach (var tensor in result.Values)
            {
                tensor.Dispose();
            }

            throw new InvalidDataException("The checkpoint's model section does not match its header: " + ex.Message, ex);
        }
    }
}
