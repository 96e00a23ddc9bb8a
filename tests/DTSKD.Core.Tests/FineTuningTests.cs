using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using TorchSharp.Modules;

namespace DTSKD.Core.Tests;

public sealed class FineTuningTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-finetune-");

    public void Dispose() => _dir.Delete(recursive: true);

    private static PadCropFlip Gray => new([0.4], [0.3], padding: 1);

    private static bool Backbone(string name) => name.StartsWith("conv1.", StringComparison.Ordinal) || name.StartsWith("bn1.", StringComparison.Ordinal) || name.StartsWith("layer", StringComparison.Ordinal);

    private static bool Stem(string name) => name.StartsWith("conv1.", StringComparison.Ordinal) || name.StartsWith("bn1.", StringComparison.Ordinal) || name.StartsWith("layer1.", StringComparison.Ordinal);

    private static ResNetDtskd Model()
    {
        manual_seed(1);
        return ResNetDtskd.ResNet18(TrainerTests.TinyModel);
    }

    private static FineTuning Tuning(ResNetDtskd model, bool freezeStem = false, bool freezeBatchNorm = false, double factor = 0.1, int warmup = 1) => new()
    {
        PretrainedParameters = [.. model.named_parameters().Select(p => p.name).Concat(model.named_buffers().Select(b => b.name)).Where(Backbone)],
        FrozenParameters = freezeStem ? [.. model.named_parameters().Select(p => p.name).Where(Stem)] : [],
        FreezeBatchNorm = freezeBatchNorm,
        BackboneLearningRateFactor = factor,
        WarmupEpochs = warmup,
    };

    private static TrainerOptions Options(int epochs, FineTuning? tuning, TrainingPrecision precision = TrainingPrecision.Float32, string? checkpoints = null) => new()
    {
        Epochs = epochs,
        BatchSize = 16,
        EvalBatchSize = 64,
        LearningRate = 0.05,
        Milestones = [2],
        BestAfterEpoch = 1,
        LogInterval = 2,
        Seed = 3,
        Precision = precision,
        FineTuning = tuning,
        CheckpointDirectory = checkpoints,
    };

    private static Dictionary<string, double[]> Values(nn.Module model) =>
        model.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().to(ScalarType.Float64).flatten().data<double>().ToArray());

    [Theory]
    [InlineData(TrainingPrecision.Float32)]
    [InlineData(TrainingPrecision.BFloat16)]
    public void Frozen_stages_keep_their_weights_and_statistics_while_the_rest_learns_and_the_model_comes_back_trainable(TrainingPrecision precision)
    {
        using var train = TrainerTests.Halves(64, 1);
        using var test = TrainerTests.Halves(32, 2);
        using var model = Model();
        var before = Values(model);
        var tuning = Tuning(model, freezeStem: true);
        using (var loss = DualTeacherLoss.For(model, train.Count, TrainerTests.Learnable))
        using (var trainer = new Trainer(model, loss, train, test, Gray, Options(2, tuning, precision)))
        {
            model.named_parameters().Where(p => Stem(p.name)).Should().OnlyContain(p => !p.parameter.requires_grad, "frozen parameters ask for no gradient");
            trainer.Run();
        }

        var after = Values(model);
        foreach (var (name, value) in before)
        {
            var frozenStage = Stem(name) && !name.EndsWith("num_batches_tracked", StringComparison.Ordinal);
            if (frozenStage)
            {
                after[name].Should().Equal(value, $"'{name}' is in a frozen stage");
            }
            else if (name.EndsWith(".weight", StringComparison.Ordinal) && !name.Contains("bn", StringComparison.Ordinal))
            {
                after[name].Should().NotEqual(value, $"'{name}' trains");
            }
        }

        after["layer2.0.bn1.running_mean"].Should().NotEqual(before["layer2.0.bn1.running_mean"], "a trained stage's batch norm tracks its statistics");
        model.parameters().Should().OnlyContain(p => p.requires_grad && p.dtype == ScalarType.Float32, "the trainer gives the model back as it found it");
    }

    [Fact]
    public void Frozen_batch_norms_keep_the_pretrained_statistics_and_the_new_neck_tracks_its_own()
    {
        using var train = TrainerTests.Halves(64, 3);
        using var test = TrainerTests.Halves(32, 4);
        using var model = Model();
        var before = Values(model);
        using (var trainer = new Trainer(model, CrossEntropyObjective.AllHeads(model), train, test, Gray, Options(1, Tuning(model, freezeBatchNorm: true))))
        {
            trainer.Run();
        }

        var after = Values(model);
        var statistics = before.Keys.Where(n => n.EndsWith("running_mean", StringComparison.Ordinal) || n.EndsWith("running_var", StringComparison.Ordinal)).ToList();
        statistics.Where(Backbone).Should().NotBeEmpty().And.OnlyContain(n => after[n].SequenceEqual(before[n]), "pretrained batch norms keep their statistics");
        statistics.Where(n => !Backbone(n)).Should().NotBeEmpty().And.OnlyContain(n => !after[n].SequenceEqual(before[n]), "the new neck's batch norms learn theirs");
        after["layer1.0.bn1.weight"].Should().NotEqual(before["layer1.0.bn1.weight"], "frozen statistics still leave the affine weights training");
    }

    [Fact]
    public void Pretrained_parameters_learn_at_the_factor_and_the_rate_warms_up_step_by_step()
    {
        using var train = TrainerTests.Halves(64, 5);
        using var test = TrainerTests.Halves(32, 6);
        using var model = Model();
        using var loss = DualTeacherLoss.For(model, train.Count, TrainerTests.Learnable);
        using var trainer = new Trainer(model, loss, train, test, Gray, Options(3, Tuning(model, factor: 0.2)));
        var groups = trainer.Optimizer.ParamGroups.Cast<ParamGroup>().ToList();
        groups.Should().HaveCount(2);
        var pretrained = model.named_parameters().Where(p => Backbone(p.name)).Select(p => p.parameter.Handle).ToHashSet();
        groups[0].Parameters.Should().OnlyContain(p => !pretrained.Contains(p.Handle), "the new heads come first, at the full rate");
        groups[1].Parameters.Select(p => p.Handle).Should().BeEquivalentTo(pretrained);
        var seen = new List<(int Epoch, int Step, double New, double Old)>();
        trainer.Callbacks.Add(new TestCallback
        {
            StepEnd = s => seen.Add((s.Epoch, s.Step, trainer.Optimizer.ParamGroups.First().LearningRate, trainer.Optimizer.ParamGroups.Last().LearningRate)),
        });

        var result = trainer.Run();

        // 4 steps an epoch: (step + 1) / 4 of the rate in epoch 0, then the schedule's (x0.1 from epoch 2).
        seen.Where(s => s.Epoch == 0).Select(s => s.New).Should().Equal(0.05 * 0.25, 0.05 * 0.5, 0.05 * 0.75, 0.05);
        seen.Where(s => s.Epoch == 1).Select(s => s.New).Should().AllBeEquivalentTo(0.05);
        seen.Where(s => s.Epoch == 2).Select(s => s.New).Should().OnlyContain(r => Math.Abs(r - 0.005) < 1e-15);
        seen.Should().OnlyContain(s => Math.Abs(s.Old - (0.2 * s.New)) < 1e-15, "the pretrained group learns at 0.2 of the new heads' rate");
        result.Metrics.Select(m => m.LearningRate).Should().Equal(0.05, 0.05, 0.05 * 0.1);
    }

    [Fact]
    public void A_run_stopped_inside_the_warm_up_resumes_exactly()
    {
        using var train = TrainerTests.Halves(64, 7);
        using var test = TrainerTests.Halves(32, 8);
        TrainingResult Run(string dir, CancellationTokenSource? stop, string? resume)
        {
            using var model = Model();
            using var loss = DualTeacherLoss.For(model, train.Count, TrainerTests.Learnable);
            var options = Options(3, Tuning(model, freezeStem: true, freezeBatchNorm: true, warmup: 2), checkpoints: dir);
            using var trainer = new Trainer(model, loss, train, test, Gray, options);
            return InterruptedRun.Run(trainer, stop, resume);
        }

        var whole = Run(Path.Combine(_dir.FullName, "whole"), null, null);
        using var stop = new CancellationTokenSource();
        var cut = Path.Combine(_dir.FullName, "cut");
        Run(cut, stop, null).Cancelled.Should().BeTrue();
        var resumed = Run(Path.Combine(_dir.FullName, "resumed"), null, Path.Combine(cut, "last.ckpt"));

        resumed.Metrics.Should().BeEquivalentTo(whole.Metrics, o => o.WithStrictOrdering().Excluding(m => m.ImagesPerSecond).Excluding(m => m.TrainSeconds).Excluding(m => m.EpochSeconds));
    }

    [Fact]
    public void A_neutral_fine_tuning_trains_exactly_as_none()
    {
        using var train = TrainerTests.Halves(48, 9);
        using var test = TrainerTests.Halves(32, 10);
        Dictionary<string, double[]> Train(Func<ResNetDtskd, FineTuning?> tuning)
        {
            using var model = Model();
            using var loss = DualTeacherLoss.For(model, train.Count, TrainerTests.Learnable);
            using (var trainer = new Trainer(model, loss, train, test, Gray, Options(2, tuning(model))))
            {
                trainer.Run();
            }

            return Values(model);
        }

        var plain = Train(_ => null);
        var neutral = Train(m => Tuning(m, factor: 1.0, warmup: 0));
        neutral.Should().BeEquivalentTo(plain, "one group at the full rate, nothing frozen and no warm-up is plain training");
    }

    [Fact]
    public void Settings_that_cannot_work_are_refused_before_anything_changes()
    {
        using var train = TrainerTests.Halves(16, 11);
        using var model = Model();
        var ce = CrossEntropyObjective.AllHeads(model);
        Trainer Make(FineTuning tuning, Func<IReadOnlyList<Parameter>, optim.Optimizer>? optimizer = null)
        {
            var options = Options(1, tuning);
            options.Optimizer = optimizer;
            return new Trainer(model, ce, train, train, Gray, options);
        }

        ((Action)(() => Make(new FineTuning { FrozenParameters = ["layer9.weight"] }))).Should().Throw<ArgumentException>().WithMessage("*'layer9.weight'*not a parameter*");
        ((Action)(() => Make(new FineTuning { PretrainedParameters = ["backbone.x"] }))).Should().Throw<ArgumentException>().WithMessage("*'backbone.x'*");
        ((Action)(() => Make(new FineTuning { BackboneLearningRateFactor = 0 }))).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "BackboneLearningRateFactor");
        ((Action)(() => Make(new FineTuning { WarmupEpochs = -1 }))).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "WarmupEpochs");
        ((Action)(() => Make(new FineTuning(), p => optim.Adam(p)))).Should().Throw<ArgumentOutOfRangeException>().WithMessage("*custom Optimizer*");
        model.parameters().Should().OnlyContain(p => p.requires_grad);
    }

    [Fact]
    public void Resuming_with_other_fine_tuning_settings_is_refused_naming_them()
    {
        using var train = TrainerTests.Halves(32, 12);
        var dir = Path.Combine(_dir.FullName, "run");
        using (var model = Model())
        using (var trainer = new Trainer(model, CrossEntropyObjective.AllHeads(model), train, train, Gray, Options(1, Tuning(model), checkpoints: dir)))
        {
            trainer.Run();
        }

        using var again = Model();
        using (var frozen = new Trainer(again, CrossEntropyObjective.AllHeads(again), train, train, Gray, Options(2, Tuning(again, freezeStem: true))))
        {
            ((Action)(() => frozen.LoadCheckpoint(Path.Combine(dir, "last.ckpt")))).Should().Throw<InvalidDataException>()
                .WithMessage("*FineTuning pretrained=*,frozen=*(the run trained with pretrained=*,frozen=0,*");
        }

        using var slower = new Trainer(again, CrossEntropyObjective.AllHeads(again), train, train, Gray, Options(2, Tuning(again, factor: 0.5)));
        slower.LoadCheckpoint(Path.Combine(dir, "last.ckpt"));
        slower.Run().Metrics.Should().HaveCount(2, "the factor, like the learning rate, may change on resume");
    }
}
