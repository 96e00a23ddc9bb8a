using System.Diagnostics;
using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;

namespace DTSKD.Core.Tests;

/// <summary>What the trainer guarantees around a run: its options are its own, a failed construction changes nothing, one run per folder, divergence is named, resuming applies or refuses.</summary>
public sealed class TrainerSafetyTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-safety-");

    public void Dispose() => _dir.Delete(recursive: true);

    private static PadCropFlip Gray => new([0.4], [0.3], padding: 1);

    private static TrainerOptions Options(string? dir = null) => new()
    {
        Epochs = 2, BatchSize = 16, EvalBatchSize = 32, LearningRate = 0.05, Milestones = [], BestAfterEpoch = 0, LogInterval = 2, Seed = 3, CheckpointDirectory = dir,
    };

    [Fact]
    public void The_trainer_keeps_a_copy_of_its_options()
    {
        using var train = TrainerTests.Halves(32, 1);
        manual_seed(1);
        using var model = ResNetDtskd.ResNet18(TrainerTests.TinyModel);
        var options = Options();
        using var trainer = new Trainer(model, CrossEntropyObjective.AllHeads(model), train, train, Gray, options);

        options.Epochs = 50;
        options.Milestones = [0];
        var result = trainer.Run();

        result.Metrics.Should().HaveCount(2, "the epochs given when the trainer was built");
        result.Metrics.Select(m => m.LearningRate).Should().Equal(0.05, 0.05);
    }

    [Theory]
    [InlineData(TrainingPrecision.BFloat16)]
    [InlineData(TrainingPrecision.Float64)]
    [InlineData(TrainingPrecision.Float32)]
    public void A_failed_construction_leaves_the_model_exactly_as_it_was(TrainingPrecision precision)
    {
        using var train = TrainerTests.Halves(32, 2);
        manual_seed(2);
        using var model = ResNetDtskd.ResNet18(TrainerTests.TinyModel);
        var before = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        var options = Options();
        options.Precision = precision;
        options.Optimizer = _ => throw new ArgumentException("this optimizer cannot be built");

        ((Action)(() => new Trainer(model, CrossEntropyObjective.AllHeads(model), train, train, Gray, options))).Should().Throw<ArgumentException>().WithMessage("this optimizer cannot be built");

        var after = model.state_dict();
        after.Should().OnlyContain(kv => kv.Value.dtype == before[kv.Key].dtype && kv.Value.allclose(before[kv.Key], 0, 0, false), "same formats and same values");
        model.parameters().Should().OnlyContain(p => p.storage_offset() == 0 && ReferenceEquals(p.grad, null));
        foreach (var t in before.Values)
        {
            t.Dispose();
        }
    }

    [Fact]
    public void A_batch_larger_than_the_training_set_is_refused_before_the_model_changes()
    {
        using var train = TrainerTests.Halves(32, 3);
        manual_seed(3);
        using var model = ResNetDtskd.ResNet18(TrainerTests.TinyModel);
        var options = Options();
        options.BatchSize = 33;
        options.Precision = TrainingPrecision.BFloat16;

        ((Action)(() => new Trainer(model, CrossEntropyObjective.AllHeads(model), train, train, Gray, options))).Should().Throw<ArgumentException>()
            .WithMessage("BatchSize 33 is larger than the training set (32 samples); at most 32.*");
        model.state_dict()["conv1.weight"].dtype.Should().Be(ScalarType.Float32);
    }

    [Fact]
    public void Logits_the_loss_refuses_as_non_finite_are_a_divergence_named_by_epoch_and_step()
    {
        using var train = TrainerTests.Halves(64, 4);
        manual_seed(4);
        using var model = ResNetDtskd.ResNet18(TrainerTests.TinyModel);
        using var loss = DualTeacherLoss.For(model, train.Count);
        var options = Options();
        options.LearningRate = 1e6;
        using var trainer = new Trainer(model, loss, train, train, Gray, options);

        var act = () => trainer.Run();

        act.Should().Throw<TrainingDivergedException>().Where(e => e.Epoch == 0 && e.Step > 0).WithMessage("*NaN or infinite at epoch 0*");
    }

    [Fact]
    public void A_folder_is_one_run_at_a_time_reentrant_within_a_process_and_refused_to_another()
    {
        var folder = Path.Combine(_dir.FullName, "run");
        using (var first = RunLock.Acquire(folder))
        using (var again = RunLock.Acquire(folder))
        {
            File.ReadAllText(Path.Combine(folder, ".lock.owner")).Should().Contain($"\"ProcessId\":{Environment.ProcessId},");
        }

        // Another process (util-linux's flock holds the same kind of lock) makes the folder busy until it ends.
        using var holder = Process.Start(new ProcessStartInfo("flock", ["--nonblock", Path.Combine(folder, ".lock"), "sleep", "30"]))!;
        var start = Stopwatch.StartNew();
        while (File.ReadAllText("/proc/locks").Split('\n').All(l => !l.Contains($" {holder.Id} ", StringComparison.Ordinal)))
        {
            start.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(20));
            Thread.Sleep(50);
        }

        ((Action)(() => RunLock.Acquire(folder))).Should().Throw<RunFolderInUseException>()
            .WithMessage($"'{folder}' is in use by another training process.", "the note names this process, which is not the holder: it is not believed");
        // Once the holder (flock and the sleep that inherited its lock) is gone, the folder is free: nothing to clean up.
        holder.Kill(entireProcessTree: true);
        holder.WaitForExit();
        RunLock? free = null;
        for (var clock = Stopwatch.StartNew(); free is null; Thread.Sleep(50))
        {
            try
            {
                free = RunLock.Acquire(folder);
            }
            catch (RunFolderInUseException) when (clock.Elapsed < TimeSpan.FromSeconds(10))
            {
                // The killed processes are still being torn down.
            }
        }

        free.Dispose();
    }

    [Fact]
    public void Resuming_applies_the_new_hyper_parameters_and_best_rule_and_refuses_another_seed()
    {
        using var train = TrainerTests.Halves(64, 5);
        using var test = TrainerTests.Halves(32, 6);
        var dir = Path.Combine(_dir.FullName, "resume");
        TrainerOptions Configure(Action<TrainerOptions> change)
        {
            var o = Options(dir);
            change(o);
            return o;
        }

        using (var model = ResNetDtskd.ResNet18(TrainerTests.TinyModel))
        using (var trainer = new Trainer(model, CrossEntropyObjective.AllHeads(model), train, test, Gray, Configure(_ => { })))
        {
            trainer.Run();
        }

        var checkpoint = Path.Combine(dir, "last.ckpt");
        using var resumed = ResNetDtskd.ResNet18(TrainerTests.TinyModel);
        using (var refused = new Trainer(resumed, CrossEntropyObjective.AllHeads(resumed), train, test, Gray, Configure(o => { o.Epochs = 4; o.Seed = 4; })))
        {
            ((Action)(() => refused.LoadCheckpoint(checkpoint))).Should().Throw<InvalidDataException>().WithMessage("*with Seed 4 (the run's is 3*");
            refused.NextEpoch.Should().Be(0, "a refused checkpoint changes nothing");
        }

        using var extended = new Trainer(resumed, CrossEntropyObjective.AllHeads(resumed), train, test, Gray, Configure(o => { o.Epochs = 4; o.LearningRate = 0.01; o.Momentum = 0.5; o.BestAfterEpoch = 3; }));
        extended.LoadCheckpoint(checkpoint);
        var result = extended.Run();

        result.Metrics.Select(m => m.LearningRate).Should().Equal(0.05, 0.05, 0.01, 0.01);
        var group = (TorchSharp.Modules.SGD.Options)extended.Optimizer.ParamGroups.Cast<TorchSharp.Modules.ParamGroup>().Single().Options;
        group.momentum.Should().Be(0.5, "the new momentum, not the checkpoint's 0.9");
        result.BestEpoch.Should().Be(3, "the best is counted from epoch 3 now, recomputed over the resumed metrics");
        result.BestTop1.Should().Be(result.Metrics[3].BackboneTop1);
    }
}
