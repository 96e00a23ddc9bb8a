namespace DTSKD.Core.Training;

/// <summary>The JSON header of a checkpoint: what it was written for, where the run stands, and the metrics so far.</summary>
internal sealed record CheckpointHeader(
    string ModelType,
    string Objective,
    string Optimizer,
    string Precision,
    int TrainCount,
    int TestCount,
    Dictionary<string, string> ModelState,
    OptionsSnapshot Options,
    int Threads,
    int SchedulerSteps,
    int NextEpoch,
    int NextStep,
    PartialEpoch? Partial,
    double? BestTop1,
    int? BestEpoch,
    List<EpochMetrics> Metrics,
    DateTime SavedUtc,
    int WorldSize = 1,
    string? DataKey = null);

/// <summary>The sums of an epoch interrupted at a step boundary, so its metrics come out as if it had not been.</summary>
internal sealed record PartialEpoch(long Samples, double LossSum, long Correct, Dictionary<string, double> ComponentSums, Dictionary<string, double> Scalars, double Seconds);

/// <summary>The serialisable part of <see cref="TrainerOptions"/>.</summary>
internal sealed record OptionsSnapshot(
    int Epochs, int BatchSize, double LearningRate, double Momentum, bool Nesterov, double WeightDecay,
    int[] Milestones, double Gamma, long Seed, int BestAfterEpoch, bool DropLast, bool CustomOptimizer, bool CustomScheduler, bool CustomOrder,
    string? FineTuning = null)
{
    public static OptionsSnapshot From(TrainerOptions o) =>
        new(o.Epochs, o.BatchSize, o.LearningRate, o.Momentum, o.Nesterov, o.WeightDecay, [.. o.Milestones], o.Gamma, o.Seed,
            o.ResolvedBestAfterEpoch, o.DropLast, o.Optimizer is not null, o.Scheduler is not null, o.EpochOrder is not null, o.FineTuning?.Describe());

    public IEnumerable<(string Option, string Then, string Now)> Differences(OptionsSnapshot now)
    {
        static string S(object v) => v is int[] a ? string.Join(",", a) : Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty;
        var pairs = new (string, object, object)[]
        {
            (nameof(Epochs), Epochs, now.Epochs), (nameof(BatchSize), BatchSize, now.BatchSize),
            (nameof(LearningRate), LearningRate, now.LearningRate), (nameof(Momentum), Momentum, now.Momentum),
            (nameof(Nesterov), Nesterov, now.Nesterov), (nameof(WeightDecay), WeightDecay, now.WeightDecay),
            (nameof(Milestones), Milestones, now.Milestones), (nameof(Gamma), Gamma, now.Gamma), (nameof(Seed), Seed, now.Seed),
            (nameof(BestAfterEpoch), BestAfterEpoch, now.BestAfterEpoch), (nameof(DropLast), DropLast, now.DropLast),
            (nameof(CustomOptimizer), CustomOptimizer, now.CustomOptimizer), (nameof(CustomScheduler), CustomScheduler, now.CustomScheduler),
            (nameof(CustomOrder), CustomOrder, now.CustomOrder), (nameof(FineTuning), FineTuning ?? "none", now.FineTuning ?? "none"),
        };
        return pairs.Where(p => S(p.Item2) != S(p.Item3)).Select(p => (p.Item1, S(p.Item2), S(p.Item3)));
    }
}
