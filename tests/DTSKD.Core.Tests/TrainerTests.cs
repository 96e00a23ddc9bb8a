using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using TorchSharp.Modules;
using static TorchSharp.torch.nn;

namespace DTSKD.Core.Tests;

public sealed class TrainerTests : IDisposable
{
    // Widths that are multiples of 16: LibTorch 2.10's CPU convolution backward reads uninitialised memory for 3x3
    // convolutions with other output channel counts on AVX-512 machines (docs/troubleshooting.md).
    internal static readonly MultiBranchModelOptions TinyModel = new() { ClassCount = 2, InputChannels = 1, BaseWidth = 16, NeckWidth = 16 };
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-trainer-");

    public void Dispose() => _dir.Delete(recursive: true);

    /// <summary>Two separable classes of 8x8 images: a bright top half or a bright bottom half, with noise.</summary>
    internal static ImageDataset Halves(int count, int seed)
    {
        var generator = new Generator((ulong)seed);
        using var scope = NewDisposeScope();
        var labels = arange(count, dtype: ScalarType.Int64).remainder(2);
        var rows = arange(8, dtype: ScalarType.Int64).view(1, 1, 8, 1);
        var top = rows.lt(4).expand(count, 1, 8, 8);
        var bright = where(labels.view(-1, 1, 1, 1).eq(0), top, top.logical_not());
        var noise = randint(0, 60, [count, 1, 8, 8], dtype: ScalarType.Int64, generator: generator);
        var images = bright.to(ScalarType.Int64).mul(150).add(noise).to(ScalarType.Byte);
        return ImageDataset.FromTensors(images, labels, 2, $"halves{seed}");
    }

    private static PadCropFlip Gray => new([0.4], [0.3], padding: 1);

    /// <summary>
    /// The recipe's loss without the KD term's T² factor: with the factor, the reference structural term collapses this
    /// tiny model to chance within 3 epochs (as it collapses short runs in the release's own code, docs/results.md).
    /// </summary>
    internal static readonly DualTeacherLossOptions Learnable = new() { ScaleKdByTemperatureSquared = false };

    private static (ResNetDtskd Model, DualTeacherLoss Loss) Build(int trainCount, int modelSeed = 1, DualTeacherLossOptions? options = null)
    {
        manual_seed(modelSeed);
        var model = ResNetDtskd.ResNet18(TinyModel);
        return (model, DualTeacherLoss.For(model, trainCount, options));
    }

    private static TrainerOptions Options(int epochs, string? checkpoints = null) => new()
    {
        Epochs = epochs,
        BatchSize = 16,
        EvalBatchSize = 64,
        LearningRate = 0.05,
        Milestones = [2],
        BestAfterEpoch = 1,
        LogInterval = 2,
        Seed = 3,
        CheckpointDirectory = checkpoints,
    };

    [Fact]
    public void A_tiny_model_learns_a_separable_problem()
    {
        // 256 samples: 16 steps an epoch, enough for BatchNorm's running statistics to settle for evaluation.
        using var train = Halves(256, 1);
        using var test = Halves(64, 2);
        var (model, loss) = Build(train.Count, options: Learnable);
        using var _ = model;
        using var __ = loss;
        var reports = new List<TrainingProgress>();
        using var trainer = new Trainer(model, loss, train, test, Gray, Options(3));
        trainer.Callbacks.Add(new TestCallback { Progress = reports.Add });

        var result = trainer.Run();

        result.Metrics.Should().HaveCount(3);
        result.Metrics[^1].BackboneTop1.Should().BeGreaterThan(90);
        result.Metrics[^1].BackboneTop1.Should().BeGreaterThan(result.Metrics[0].BackboneTop1 - 1e-9);
        result.FinalTop1.Should().Be(result.Metrics[^1].BackboneTop1);
        result.BestEpoch.Should().BeOneOf(1, 2);
        result.Metrics.Select(m => m.LearningRate).Should().Equal(0.05, 0.05, 0.05 * 0.1);
        result.Metrics.Select(m => m.Scalars["alpha"]).Should().Equal(Enumerable.Range(0, 3).Select(e => CoefficientSchedule.Cosine(0.9, 0).At(e, 3)));
        result.Metrics[0].TestTop1.Should().HaveCount(4);
        result.Metrics[0].TrainComponents.Keys.Should().Contain(["history/backbone", "structural/branch3"]);
        reports.Where(r => r.Completed is null).Select(r => r.Step).Should().Contain([2, 4]);
        reports.Where(r => r.Completed is not null).Should().HaveCount(3)
            .And.OnlyContain(r => r.Step == r.StepsPerEpoch && r.RunningLoss == r.Completed!.TrainLoss && r.RunningTop1 == r.Completed.TrainTop1);
        loss.HistoricalTeacher!.SeenCount().Should().Be(256, "every training sample's history is written");
    }

    [Fact]
    public void Resuming_from_an_epoch_checkpoint_gives_the_same_metrics_as_an_uninterrupted_run()
    {
        using var train = Halves(48, 3);
        using var test = Halves(32, 4);
        var uninterrupted = RunFully(train, test, epochs: 3);

        // Stop after the first epoch: the token fires when epoch 0 completes, so the run stops at epoch 1, step 0.
        var dir = Path.Combine(_dir.FullName, "a");
        using var cts = new CancellationTokenSource();
        var (model, loss) = Build(train.Count);
        using (model)
        using (loss)
        using (var trainer = new Trainer(model, loss, train, test, Gray, Options(3, dir)))
        {
            trainer.Callbacks.Add(new TestCallback { EpochEnd = _ => cts.Cancel() });
            var first = trainer.Run(cts.Token);
            first.Cancelled.Should().BeTrue();
            first.Metrics.Should().HaveCount(1);
        }

        var resumed = Resume(train, test, Path.Combine(dir, "last.ckpt"), epochs: 3);

        resumed.Metrics.Should().HaveCount(3);
        resumed.Metrics.Should().BeEquivalentTo(uninterrupted.Metrics, o => o.WithStrictOrdering().Excluding(m => m.ImagesPerSecond).Excluding(m => m.TrainSeconds).Excluding(m => m.EpochSeconds));
        resumed.BestTop1.Should().Be(uninterrupted.BestTop1);
    }

    [Fact]
    public void Cancelling_inside_an_epoch_writes_a_checkpoint_that_resumes_exactly()
    {
        using var train = Halves(64, 5);
        using var test = Halves(32, 6);
        var uninterrupted = RunFully(train, test, epochs: 2);

        var dir = Path.Combine(_dir.FullName, "b");
        using var cts = new CancellationTokenSource();
        var (model, loss) = Build(train.Count);
        using (model)
        using (loss)
        using (var trainer = new Trainer(model, loss, train, test, Gray, Options(2, dir)))
        {
            // Reports come at steps 2 and 4 of each epoch; cancel at epoch 1, step 2.
            trainer.Callbacks.Add(new TestCallback { Progress = p => { if (p.Epoch == 1 && p.Step == 2) { cts.Cancel(); } } });
            var result = trainer.Run(cts.Token);
            result.Cancelled.Should().BeTrue();
            trainer.NextEpoch.Should().Be(1);
            trainer.NextStep.Should().Be(2);
        }

        var resumed = Resume(train, test, Path.Combine(dir, "last.ckpt"), epochs: 2);

        resumed.Metrics.Should().BeEquivalentTo(uninterrupted.Metrics, o => o.WithStrictOrdering().Excluding(m => m.ImagesPerSecond).Excluding(m => m.TrainSeconds).Excluding(m => m.EpochSeconds));
    }

    [Fact]
    public void A_training_set_that_fails_mid_epoch_is_checkpointed_at_the_last_finished_step_and_resumes_exactly()
    {
        using var train = Halves(64, 5);
        using var test = Halves(32, 6);
        var uninterrupted = RunFully(train, test, epochs: 2);

        // The reader of epoch 1 fails at step 3, as a streaming folder does when a file is deleted under the run.
        var dir = Path.Combine(_dir.FullName, "fault");
        using var broken = new FailingSource(train, epoch: 1, step: 3);
        var (model, loss) = Build(train.Count);
        using (model)
        using (loss)
        using (var trainer = new Trainer(model, loss, broken, test, Gray, Options(2, dir)))
        {
            var act = () => trainer.Run();

            var thrown = act.Should().Throw<TrainingDataException>().Which;
            (thrown.Epoch, thrown.Step, thrown.Checkpoint).Should().Be((1, 3, Path.Combine(dir, "last.ckpt")));
            thrown.InnerException.Should().BeOfType<FileNotFoundException>();
            thrown.Message.Should().Be($"Could not read the training batch: '{FailingSource.File}' is gone.; training stopped at epoch 1 (0-based), step 3, and '{Path.Combine(dir, "last.ckpt")}' holds every step before it.");
            (trainer.NextEpoch, trainer.NextStep).Should().Be((1, 3));
        }

        var resumed = Resume(train, test, Path.Combine(dir, "last.ckpt"), epochs: 2);

        resumed.Metrics.Should().BeEquivalentTo(uninterrupted.Metrics, o => o.WithStrictOrdering().Excluding(m => m.ImagesPerSecond).Excluding(m => m.TrainSeconds).Excluding(m => m.EpochSeconds));
    }

    [Fact]
    public void A_test_set_that_fails_is_checkpointed_after_the_epoch_s_steps_and_the_resume_evaluates_it_exactly()
    {
        using var train = Halves(64, 5);
        using var test = Halves(32, 6);
        var uninterrupted = RunFully(train, test, epochs: 3);

        // The second evaluation (epoch 1) fails, as a streaming test split does when a file is deleted under the run.
        var dir = Path.Combine(_dir.FullName, "eval-fault");
        using var broken = new FailingSource(test, epoch: 1, step: 0);
        var (model, loss) = Build(train.Count);
        using (model)
        using (loss)
        using (var trainer = new Trainer(model, loss, train, broken, Gray, Options(3, dir)))
        {
            var act = () => trainer.Run();

            var thrown = act.Should().Throw<TrainingDataException>().Which;
            (thrown.Epoch, thrown.Step).Should().Be((1, trainer.StepsPerEpoch));
            thrown.Message.Should().Be($"Could not read the test set: '{FailingSource.File}' is gone.; training stopped after the last step of epoch 1 (0-based), before its evaluation, and '{Path.Combine(dir, "last.ckpt")}' holds every step of it.");
        }

        // Milestones = [2]: the learning rate's step at the end of epoch 1 must happen once, after the resumed evaluation.
        var resumed = Resume(train, test, Path.Combine(dir, "last.ckpt"), epochs: 3);

        resumed.Metrics.Should().BeEquivalentTo(uninterrupted.Metrics, o => o.WithStrictOrdering().Excluding(m => m.ImagesPerSecond).Excluding(m => m.TrainSeconds).Excluding(m => m.EpochSeconds));
    }

    [Fact]
    public void A_training_set_that_fails_without_a_checkpoint_folder_says_nothing_was_saved()
    {
        using var train = Halves(32, 5);
        using var test = Halves(16, 6);
        using var broken = new FailingSource(train, epoch: 0, step: 1);
        var (model, loss) = Build(train.Count);
        using (model)
        using (loss)
        using (var trainer = new Trainer(model, loss, broken, test, Gray, Options(1)))
        {
            var act = () => trainer.Run();

            act.Should().Throw<TrainingDataException>().Where(e => e.Checkpoint == null && e.Step == 1).WithMessage("*no checkpoint folder is set, so nothing was saved.");
        }
    }

    [Fact]
    public void Every_checkpoint_records_the_data_key_and_a_trainer_of_other_data_refuses_it()
    {
        using var train = Halves(32, 5);
        using var test = Halves(16, 6);
        var dir = Path.Combine(_dir.FullName, "keyed");
        var (model, loss) = Build(train.Count);
        using (model)
        using (loss)
        {
            var options = Options(1, dir);
            options.DataKey = "folder-a";
            using var trainer = new Trainer(model, loss, train, test, Gray, options);
            trainer.Run();
        }

        var checkpoint = Path.Combine(dir, "last.ckpt");
        TrainerCheckpoint.ReadSummary(checkpoint).DataKey.Should().Be("folder-a");
        foreach (var (key, refused) in new (string?, bool)[] { ("folder-b", true), ("folder-a", false), (null, false) })
        {
            var (other, otherLoss) = Build(train.Count);
            using (other)
            using (otherLoss)
            {
                var options = Options(2);
                options.DataKey = key;
                using var trainer = new Trainer(other, otherLoss, train, test, Gray, options);
                var act = () => trainer.LoadCheckpoint(checkpoint);
                if (refused)
                {
                    // The same counts: only the key tells the runs' data apart.
                    act.Should().Throw<InvalidDataException>().WithMessage(
                        $"Checkpoint '{checkpoint}' was written for data 'folder-a'; this trainer's is 'folder-b' (TrainerOptions.DataKey): the historical teacher's rows belong to other samples.");
                }
                else
                {
                    act.Should().NotThrow(key ?? "a trainer without a key checks nothing");
                }
            }
        }
    }

    [Fact]
    public void A_nan_loss_stops_training_naming_epoch_and_step_and_keeps_the_last_checkpoint()
    {
        using var train = Halves(64, 7);
        using var test = Halves(16, 8);
        var dir = Path.Combine(_dir.FullName, "c");
        manual_seed(1);
        using var model = ResNetDtskd.ResNet18(TinyModel);
        var objective = new PoisonedObjective(CrossEntropyObjective.AllHeads(model), epoch: 1, step: 3);
        using var trainer = new Trainer(model, objective, train, test, Gray, Options(3, dir));

        var act = () => trainer.Run();

        act.Should().Throw<TrainingDivergedException>().Where(e => e.Epoch == 1 && e.Step == 3).WithMessage("*epoch 1*step 3*");
        manual_seed(1);
        using var other = ResNetDtskd.ResNet18(TinyModel);
        using var reader = new Trainer(other, objective, train, test, Gray, Options(3));
        reader.LoadCheckpoint(Path.Combine(dir, "last.ckpt"));
        reader.NextEpoch.Should().Be(1, "the checkpoint of the last good epoch is intact");
        reader.Metrics.Should().HaveCount(1);
    }

    [Fact]
    public void Bad_checkpoints_are_clear_errors_and_change_nothing()
    {
        using var train = Halves(32, 9);
        using var test = Halves(16, 10);
        var dir = Path.Combine(_dir.FullName, "d");
        var (model, loss) = Build(train.Count);
        using (model)
        using (loss)
        using (var trainer = new Trainer(model, loss, train, test, Gray, Options(1, dir)))
        {
            trainer.Run();
        }

        var good = Path.Combine(dir, "last.ckpt");
        var truncated = Path.Combine(dir, "truncated.ckpt");
        File.WriteAllBytes(truncated, File.ReadAllBytes(good)[..^1000]);
        var garbage = Path.Combine(dir, "garbage.ckpt");
        File.WriteAllText(garbage, "not a checkpoint");

        var (model2, loss2) = Build(train.Count, modelSeed: 2);
        using var m2 = model2;
        using var h2 = loss2;
        using var fresh = new Trainer(model2, loss2, train, test, Gray, Options(1));
        var before = model2.parameters().Select(p => p.detach().clone()).ToList();

        ((Action)(() => fresh.LoadCheckpoint(Path.Combine(dir, "missing.ckpt")))).Should().Throw<FileNotFoundException>().WithMessage("*missing.ckpt*");
        ((Action)(() => fresh.LoadCheckpoint(truncated))).Should().Throw<InvalidDataException>().WithMessage("*truncated or corrupted*");
        ((Action)(() => fresh.LoadCheckpoint(garbage))).Should().Throw<InvalidDataException>().WithMessage("*not a DTSKD.Core checkpoint*");

        manual_seed(3);
        using var wider = ResNetDtskd.ResNet18(new MultiBranchModelOptions { ClassCount = 2, InputChannels = 1, BaseWidth = 32, NeckWidth = 16 });
        using var h3 = DualTeacherLoss.For(wider, train.Count);
        using var mismatched = new Trainer(wider, h3, train, test, Gray, Options(1));
        ((Action)(() => mismatched.LoadCheckpoint(good))).Should().Throw<InvalidDataException>().WithMessage("*does not match this model*conv1.weight: checkpoint Float32[16,1,3,3], model Float32[32,1,3,3]*");

        using var ceTrainer = new Trainer(model2, CrossEntropyObjective.AllHeads(model2), train, test, Gray, Options(1));
        ((Action)(() => ceTrainer.LoadCheckpoint(good))).Should().Throw<InvalidDataException>().WithMessage("*objective 'dtskd'*'ce-all-heads'*");

        model2.parameters().Zip(before).Should().OnlyContain(p => p.First.allclose(p.Second, 0, 0, false), "failed loads change nothing");
        loss2.HistoricalTeacher!.SeenCount().Should().Be(0);
        fresh.NextEpoch.Should().Be(0);
        Directory.GetFiles(dir).Should().NotContain(f => f.EndsWith(".tmp", StringComparison.Ordinal));
    }

    [Fact]
    public void Live_tensors_stay_flat_across_steps_and_epochs()
    {
        using var train = Halves(64, 11);
        using var test = Halves(16, 12);
        var (model, loss) = Build(train.Count);
        using var _ = model;
        using var __ = loss;
        var options = Options(4);
        options.LogInterval = 1;
        var counts = new List<(int Epoch, int Step, long Live)>();
        using var trainer = new Trainer(model, loss, train, test, Gray, options);
        trainer.Callbacks.Add(new TestCallback { Progress = p => counts.Add((p.Epoch, p.Step, TestTensors.LiveTensors)) });

        trainer.Run();

        // Once the first epoch has created the momentum buffers and the sums, the count at a given point of an
        // epoch is the same in every later epoch (mid-epoch reports also hold the epoch's order and batch).
        counts.Should().HaveCount(16);
        counts.Where(c => c.Epoch > 0).GroupBy(c => c.Step)
            .Should().OnlyContain(g => g.Select(c => c.Live).Distinct().Count() == 1, $"live tensor counts were {string.Join(",", counts)}");
        counts.Where(c => c.Epoch > 0).Select(c => c.Live).Max().Should().BeLessThanOrEqualTo(counts.Where(c => c.Epoch > 0).Select(c => c.Live).Min() + 3);
    }

    [Fact]
    public void Options_and_inputs_are_validated_up_front()
    {
        using var train = Halves(8, 13);
        using var rgb = ImageDataset.FromTensors(zeros([4, 3, 8, 8], ScalarType.Byte), tensor(new long[] { 0, 1, 0, 1 }), 2);
        manual_seed(1);
        using var model = ResNetDtskd.ResNet18(TinyModel);
        var ce = CrossEntropyObjective.AllHeads(model);
        ((Action)(() => new Trainer(model, ce, train, train, Gray, new TrainerOptions { LearningRate = 0 }))).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "LearningRate");
        ((Action)(() => new Trainer(model, ce, train, train, Gray, new TrainerOptions { Epochs = -1 }))).Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "Epochs");
        ((Action)(() => new Trainer(model, ce, train, rgb, Gray, new TrainerOptions()))).Should().Throw<ArgumentException>().WithMessage("*normalises 1 channels*test set 3*");
        // The default schedule is the recipe's: lr 0.1, x0.1 from epoch 150 and again from 225.
        using var sgd = new TrainerOptions().CreateDefaultOptimizer([.. model.parameters()]);
        var scheduler = new TrainerOptions().CreateScheduler(sgd);
        var rates = new List<double> { sgd.ParamGroups.First().LearningRate };
        for (var e = 1; e < 300; e++)
        {
            scheduler.step();
            rates.Add(sgd.ParamGroups.First().LearningRate);
        }

        rates[149].Should().Be(0.1);
        rates[150].Should().BeApproximately(0.01, 1e-15);
        rates[299].Should().BeApproximately(0.001, 1e-15);
        new TrainerOptions().ResolvedBestAfterEpoch.Should().Be(200, "two thirds of the recipe's 300 epochs, as the release");
        new TrainerOptions { Epochs = 2 }.ResolvedBestAfterEpoch.Should().Be(1);
    }

    [Fact]
    public void A_user_model_with_two_branches_trains_with_Adam_and_a_cosine_schedule_and_resumes_exactly()
    {
        using var train = Halves(96, 41);
        using var test = Halves(32, 42);
        TrainerOptions Options(string? dir) => new()
        {
            Epochs = 3, BatchSize = 16, EvalBatchSize = 32, LogInterval = 2, Seed = 4, CheckpointDirectory = dir,
            Optimizer = parameters => optim.Adam(parameters, 0.01),
            Scheduler = optimizer => optim.lr_scheduler.CosineAnnealingLR(optimizer, 3),
        };

        TrainingResult Train(string? dir, int modelSeed, string? resume, CancellationTokenSource? stopAt = null)
        {
            manual_seed(modelSeed);
            using var model = new TwoBranchNet();
            using var loss = DualTeacherLoss.For(model, train.Count, Learnable);
            using var trainer = new Trainer(model, loss, train, test, Gray, Options(dir));
            trainer.Optimizer.Should().BeOfType<TorchSharp.Modules.Adam>();
            return InterruptedRun.Run(trainer, stopAt, resume);
        }

        var full = Train(null, 1, null);
        full.Metrics.Select(m => m.LearningRate).Should().Equal(
            [0.01, 0.01 * (1 + Math.Cos(Math.PI / 3)) / 2, 0.01 * (1 + Math.Cos(2 * Math.PI / 3)) / 2], (a, b) => Math.Abs(a - b) < 1e-12);
        full.Metrics[^1].BackboneTop1.Should().BeGreaterThan(90);
        full.Metrics[0].TestTop1.Should().HaveCount(3, "the backbone and the user model's two branches");
        full.Metrics[0].TrainComponents.Keys.Should().Contain(["history/branch2", "structural/branch2"]).And.NotContain("structural/branch3");

        var dir = Path.Combine(_dir.FullName, "user");
        using var cts = new CancellationTokenSource();
        Train(dir, 1, null, cts).Cancelled.Should().BeTrue();
        var resumed = Train(null, 99, Path.Combine(dir, "last.ckpt"));

        resumed.Metrics.Should().BeEquivalentTo(full.Metrics, o => o.WithStrictOrdering().Excluding(m => m.ImagesPerSecond).Excluding(m => m.TrainSeconds).Excluding(m => m.EpochSeconds));
    }

    /// <summary>A model a user might write: its own layers, two branches, no DTSKD.Core base class.</summary>
    private sealed class TwoBranchNet : Module<Tensor, MultiBranchOutput>, IMultiBranchModel
    {
        private readonly Sequential stem = Sequential(Conv2d(1, 16, 3, padding: 1), BatchNorm2d(16), ReLU());
        private readonly Sequential block = Sequential(Conv2d(16, 32, 3, stride: 2, padding: 1), BatchNorm2d(32), ReLU());
        private readonly Linear head = Linear(32, 2);
        private readonly Linear early = Linear(16, 2);
        private readonly Linear late = Linear(32, 2);

        public TwoBranchNet() : base(nameof(TwoBranchNet)) => RegisterComponents();

        public int ClassCount => 2;

        public int BranchCount => 2;

        public override MultiBranchOutput forward(Tensor input)
        {
            using var scope = NewDisposeScope();
            var a = stem.call(input);
            var b = block.call(a);
            var (fa, fb) = (a.mean([2, 3]), b.mean([2, 3]));
            return new MultiBranchOutput(head.call(fb), [early.call(fa), late.call(fb.mul(0.5))]).MoveToOuterDisposeScope();
        }
    }

    private static TrainingResult RunFully(ImageDataset train, ImageDataset test, int epochs)
    {
        var (model, loss) = Build(train.Count);
        using (model)
        using (loss)
        using (var trainer = new Trainer(model, loss, train, test, Gray, Options(epochs)))
        {
            return trainer.Run();
        }
    }

    private static TrainingResult Resume(ImageDataset train, ImageDataset test, string checkpoint, int epochs)
    {
        // A different initialisation: everything must come from the checkpoint.
        var (model, loss) = Build(train.Count, modelSeed: 99);
        using (model)
        using (loss)
        using (var trainer = new Trainer(model, loss, train, test, Gray, Options(epochs)))
        {
            trainer.LoadCheckpoint(checkpoint);
            return trainer.Run();
        }
    }

    private sealed class PoisonedObjective(IMultiBranchObjective inner, int epoch, int step) : IMultiBranchObjective
    {
        private int _calls;

        public string Name => "poisoned";

        public MultiBranchLossResult Compute(MultiBranchOutput output, Tensor labels, Tensor indices, int e, int totalEpochs)
        {
            var result = inner.Compute(output, labels, indices, e, totalEpochs);
            var s = e == 0 ? _calls : _calls - 4;
            _calls++;
            if (e == epoch && s >= step)
            {
                result.Total.mul_(float.NaN);
            }

            return result;
        }

        public void SaveState(Stream stream) => inner.SaveState(stream);

        public void LoadState(Stream stream) => inner.LoadState(stream);
    }
}
