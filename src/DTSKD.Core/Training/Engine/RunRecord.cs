using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// What a run has measured: the running sums of the epoch in progress, every completed epoch's metrics, and the rule for
/// the best epoch (the highest backbone top-1 from <see cref="TrainerOptions.BestAfterEpoch"/> on, the first of equals).
/// Owns the sums' tensors.
/// </summary>
internal sealed class RunRecord : IDisposable
{
    private readonly List<EpochMetrics> _metrics = [];
    private readonly RunningSums _sums;
    private readonly int _bestAfterEpoch;
    private readonly int _epochs;

    public RunRecord(TrainerOptions options, Device device)
    {
        _bestAfterEpoch = options.ResolvedBestAfterEpoch;
        _epochs = options.Epochs;
        _sums = new RunningSums(device);
    }

    public IReadOnlyList<EpochMetrics> Metrics => _metrics;

    public double? BestTop1 { get; private set; }

    public int? BestEpoch { get; private set; }

    /// <summary>Seconds of training in the epoch so far, before the current stretch (an interrupted epoch's earlier part).</summary>
    public double EarlierSeconds => _sums.Seconds;

    /// <summary>Adds a step's loss, components and backbone accuracy to the epoch's sums, on the device.</summary>
    public void Add(MultiBranchLossResult result, Tensor backboneLogits, Tensor labels, int step, bool guardNonFinite) =>
        _sums.Add(result, backboneLogits, labels, step, guardNonFinite);

    /// <summary>Every rank's sums of the epoch, on every rank (before <see cref="Complete"/>).</summary>
    public void Combine(IProcessGroup group) => _sums.Combine(group);

    /// <summary>Throws <see cref="TrainingDivergedException"/> at the first step of the epoch whose loss was not finite.</summary>
    public void CheckFinite(int epoch)
    {
        if (_sums.FirstNonFiniteStep() is { } step)
        {
            throw new TrainingDivergedException(epoch, step);
        }
    }

    /// <summary>The epoch's running figures at <paramref name="step"/> of <paramref name="steps"/>.</summary>
    public TrainingProgress Running(int epoch, int step, int steps, double seconds)
    {
        var (samples, loss, top1) = _sums.Running();
        return new TrainingProgress(epoch, _epochs, step, steps, loss, top1, seconds > 0 ? samples / seconds : 0, null);
    }

    /// <summary>The epoch was stopped at a step boundary after <paramref name="seconds"/> of training in all.</summary>
    public void Pause(double seconds) => _sums.Seconds = seconds;

    /// <summary>Closes an epoch with its test evaluation; returns its metrics and whether it is the best so far.</summary>
    public (EpochMetrics Metrics, bool Improved) Complete(int epoch, double learningRate, double trainSeconds, Func<EvaluationResult> evaluate)
    {
        var (samples, loss, top1) = _sums.Running();
        var components = _sums.ComponentMeans();
        var scalars = new Dictionary<string, double>(_sums.Scalars);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var test = evaluate();
        var metrics = new EpochMetrics(epoch, learningRate, scalars, loss, components, top1, test.Top1, test.Top5, test.Loss,
            trainSeconds > 0 ? samples / trainSeconds : 0, trainSeconds, trainSeconds + clock.Elapsed.TotalSeconds);
        _metrics.Add(metrics);
        var improved = epoch >= _bestAfterEpoch && (BestTop1 is null || metrics.BackboneTop1 > BestTop1);
        if (improved)
        {
            (BestTop1, BestEpoch) = (metrics.BackboneTop1, epoch);
        }

        _sums.Reset();
        return (metrics, improved);
    }

    /// <summary>The sums of an epoch stopped at a step boundary, for a checkpoint; null at an epoch boundary.</summary>
    public PartialEpoch? Partial(bool midEpoch) => midEpoch ? _sums.Snapshot() : null;

    /// <summary>A restored run's metrics and interrupted epoch; the best is recounted by this run's rule, which may have changed.</summary>
    public void Restore(IEnumerable<EpochMetrics> metrics, PartialEpoch? partial)
    {
        _metrics.Clear();
        _metrics.AddRange(metrics);
        (BestTop1, BestEpoch) = (null, null);
        foreach (var m in _metrics)
        {
            if (m.Epoch >= _bestAfterEpoch && (BestTop1 is null || m.BackboneTop1 > BestTop1))
            {
                (BestTop1, BestEpoch) = (m.BackboneTop1, m.Epoch);
            }
        }

        _sums.Restore(partial);
    }

    public TrainingResult Result(bool cancelled) =>
        new([.. _metrics], BestTop1, BestEpoch, _metrics.Count > 0 ? _metrics[^1].BackboneTop1 : null, cancelled);

    public void Dispose() => _sums.Dispose();
}
