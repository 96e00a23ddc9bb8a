using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// The learning rate over a run: the optimizer's configured hyper-parameters, the scheduler (the recipe's MultiStepLR or
/// the options'), stepped per epoch or per step, and rebuilt on resume at the step count where the run stood.
/// </summary>
internal sealed class LearningRateSchedule
{
    private readonly optim.Optimizer _optimizer;
    private readonly TrainerOptions _options;
    private optim.lr_scheduler.LRScheduler? _scheduler;
    private double[]? _scheduled;

    public LearningRateSchedule(optim.Optimizer optimizer, TrainerOptions options)
    {
        _optimizer = optimizer;
        _options = options;
    }

    /// <summary>How many times the scheduler has stepped in the whole run (what a checkpoint records).</summary>
    public int Steps { get; private set; }

    /// <summary>The first parameter group's learning rate now.</summary>
    public double Rate => _optimizer.ParamGroups.First().LearningRate;

    /// <summary>Builds the scheduler afresh from the initial learning rates and steps it to where the run stands.</summary>
    public void Start()
    {
        foreach (var group in _optimizer.ParamGroups)
        {
            group.LearningRate = group.InitialLearningRate;
        }

        _scheduler = _options.CreateScheduler(_optimizer);
        for (var i = 0; i < Steps; i++)
        {
            _scheduler.step();
        }
    }

    /// <summary>
    /// Before an optimizer step: during the fine-tuning's warm-up every group's rate is the schedule's times
    /// (steps done + 1) / (warm-up steps), a function of the position alone, so a resumed run warms up alike.
    /// </summary>
    public void BeforeStep(int epoch, int step, int stepsPerEpoch)
    {
        var warmup = (long)(_options.FineTuning?.WarmupEpochs ?? 0) * stepsPerEpoch;
        var done = ((long)epoch * stepsPerEpoch) + step;
        if (done >= warmup)
        {
            return;
        }

        var factor = (done + 1.0) / warmup;
        _scheduled = [.. _optimizer.ParamGroups.Select(g => g.LearningRate)];
        foreach (var group in _optimizer.ParamGroups)
        {
            group.LearningRate *= factor;
        }
    }

    /// <summary>After every optimizer step: puts back the schedule's rates a warm-up scaled, steps a per-step scheduler.</summary>
    public void AfterStep()
    {
        if (_scheduled is not null)
        {
            foreach (var (group, rate) in _optimizer.ParamGroups.Zip(_scheduled))
            {
                group.LearningRate = rate;
            }

            _scheduled = null;
        }

        if (_options.SchedulerInterval == SchedulerInterval.Step)
        {
            Advance();
        }
    }

    /// <summary>After an epoch's last step: steps a per-epoch scheduler.</summary>
    public void AfterEpoch()
    {
        if (_options.SchedulerInterval == SchedulerInterval.Epoch)
        {
            Advance();
        }
    }

    /// <summary>
    /// Continues a restored run: the scheduler's position is the checkpoint's, while the hyper-parameters (learning rate,
    /// momentum, weight decay...) are this run's, which a restored optimizer state overwrote: <paramref name="configured"/>
    /// puts them back.
    /// </summary>
    public void Restore(int steps, IReadOnlyList<byte[]> configured)
    {
        foreach (var (group, bytes) in _optimizer.ParamGroups.Cast<ParamGroup>().Zip(configured))
        {
            using var reader = new BinaryReader(new MemoryStream(bytes), System.Text.Encoding.UTF8);
            group.Options.LoadStateDict(reader);
        }

        Steps = steps;
    }

    /// <summary>The optimizer's configured hyper-parameters, group by group, in TorchSharp's own format (for <see cref="Restore"/>).</summary>
    public IReadOnlyList<byte[]> Configured() => [.. _optimizer.ParamGroups.Cast<ParamGroup>().Select(group =>
    {
        using var buffer = new MemoryStream();
        using (var writer = new BinaryWriter(buffer, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            group.Options.SaveStateDict(writer);
        }

        return buffer.ToArray();
    })];

    private void Advance()
    {
        _scheduler!.step();
        Steps++;
    }
}
