using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using DTSKD.Core.Data;
using DTSKD.Core.MpiWorker;
using DTSKD.Core.Training;

namespace DTSKD.Core.Tests.Parallel;

/// <summary>The MPI tests start two LibTorch processes: alone, never beside the other tests.</summary>
[CollectionDefinition("mpirun", DisableParallelization = true)]
public sealed class MpirunTests
{
}

/// <summary>
/// Data-parallel training equals one process that accumulates the ranks' micro-batches, with thread ranks and with MPI
/// ranks under mpirun; the MPI collectives carry what they should, and a rank that stops or dies stops the job.
/// </summary>
[Collection("mpirun")]
public sealed class DataParallelTests : IDisposable
{
    /// <summary>
    /// How close synchronised batch norms come to one batch norm over the whole batch. Not 1e-10: their statistics are
    /// summed per rank first, another order of float64 additions, and this scenario's whole-batch run (its batch norms
    /// after pooling see 8 values) moves 1.4e-9 with the thread count alone (measured here, Intel Xeon). Batch norm per
    /// rank ends 11.7 away.
    /// </summary>
    private const double WholeBatchTolerance = 1e-8;

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-mpi-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public void Two_thread_ranks_train_the_weights_of_one_process_accumulating_their_two_micro_batches()
    {
        var reference = Reference();
        var ranks = ThreadGroup.Create(2);

        // Built one after another: the seeds set the one global generator, which two threads would share.
        var replicas = ranks.Select(_ => new DataParallelScenario.Replica()).ToArray();
        var weights = ThreadGroup.Run(ranks, group =>
        {
            using var replica = replicas[group.Rank];
            using var trainer = replica.Trainer(group);
            var result = trainer.Run();
            return (Weights: DataParallelScenario.Weights(replica.Model), result.Metrics[^1].TrainLoss);
        });

        weights[0].Weights.Should().HaveCount(reference.Length);
        MaxGap(weights[0].Weights, reference).Should().BeLessThan(1e-10);
        MaxGap(weights[1].Weights, reference).Should().BeLessThan(1e-10);
        weights[0].TrainLoss.Should().Be(weights[1].TrainLoss, "the epoch's training loss is summed over the ranks");
    }

    [Fact]
    public void Ranks_whose_histories_hold_their_shard_only_train_the_same_weights_and_checkpoint_and_resume_exactly()
    {
        var reference = Reference();
        var ranks = ThreadGroup.Create(2);
        var replicas = ranks.Select(g => new DataParallelScenario.Replica(shardOf: g)).ToArray();
        replicas.Should().AllSatisfy(r => r.Loss.HistoricalTeacher!.SampleCount.Should().Be(DataParallelScenario.Samples / 2, "N / R rows"));
        var stopped = ThreadGroup.Run(ranks, group =>
        {
            using var replica = replicas[group.Rank];
            using var trainer = replica.Trainer(group, _dir.FullName);
            using var stop = new CancellationTokenSource();
            trainer.Callbacks.Add(new DataParallelScenario.StopAfter(1, 0, stop));
            return trainer.Run(stop.Token).Cancelled;
        });
        stopped.Should().AllBeEquivalentTo(true);

        var weights = ResumedWeights(Path.Combine(_dir.FullName, "last.ckpt"), shardedHistory: true);

        // The same rows, each at its place in the shard instead of its index in the training set.
        MaxGap(weights[0], reference).Should().BeLessThan(1e-10);
        MaxGap(weights[1], reference).Should().BeLessThan(1e-10);
    }

    [Fact]
    public void A_history_of_neither_the_whole_set_s_size_nor_the_rank_s_shard_is_refused_before_the_model_changes()
    {
        var group = ThreadGroup.Create(2)[1];
        using var replica = new DataParallelScenario.Replica();
        using var loss = DualTeacherLoss.For(replica.Model, 5);
        var options = DataParallelScenario.Options(group);

        var act = () => new Trainer(replica.Model, loss, replica.Train, replica.Test, DataParallelScenario.Augmentation, options);

        act.Should().Throw<ArgumentException>().WithMessage("The objective keeps 5 per-sample rows; give it the training set's 24, or rank 1's shard of 12 (DataParallel.ShardSize).*");
        replica.Model.parameters().First().dtype.Should().Be(ScalarType.Float32, "the model was not converted to the run's float64");
    }

    [Fact]
    public void Two_thread_ranks_with_synchronised_batch_norms_train_the_weights_of_one_process_on_their_whole_batch()
    {
        var reference = Reference(wholeBatch: true);
        MaxGap(Reference(), reference).Should().BeGreaterThan(1, "batch norm per rank trains other weights (11.7 apart), or this test could not fail");
        var ranks = ThreadGroup.Create(2);
        var replicas = ranks.Select(_ => new DataParallelScenario.Replica()).ToArray();
        var trained = ThreadGroup.Run(ranks, group =>
        {
            using var replica = replicas[group.Rank];
            using var trainer = replica.Trainer(group, syncBatchNorm: true);
            trainer.Run();
            var statistics = replica.Model.modules().OfType<TorchSharp.Modules.BatchNorm>().Select(b => b.running_var!.sum().item<double>()).ToArray();
            return (Weights: DataParallelScenario.Weights(replica.Model), Statistics: statistics);
        });

        MaxGap(trained[0].Weights, reference).Should().BeLessThan(WholeBatchTolerance);
        MaxGap(trained[1].Weights, reference).Should().BeLessThan(WholeBatchTolerance);
        trained[1].Statistics.Should().Equal(trained[0].Statistics, "both ranks update their running statistics with the same whole-batch figures");
    }

    [Fact]
    public void Two_mpi_ranks_with_synchronised_batch_norms_train_the_weights_of_one_process_on_their_whole_batch()
    {
        var (code, output) = Mpirun("sync-bn", _dir.FullName);
        code.Should().Be(0, output);

        EachRankMatchesTheReference(wholeBatch: true);
    }

    [Fact]
    public void Evaluation_is_split_over_the_ranks_and_every_rank_gets_the_whole_test_set_s_figures()
    {
        EvaluationResult expected;
        using (var single = new DataParallelScenario.Replica())
        using (var alone = single.Trainer(null))
        {
            expected = alone.EvaluateTest();
        }

        // Three ranks for eight test images (3, 3 and 2 each); rank 2's running statistics are another's, as after a step.
        var ranks = ThreadGroup.Create(3);
        var replicas = ranks.Select(_ => new DataParallelScenario.Replica()).ToArray();
        using (no_grad())
        {
            foreach (var mean in ((nn.Module)replicas[2].Model).named_buffers().Where(b => b.name.EndsWith("running_mean", StringComparison.Ordinal)))
            {
                mean.buffer.add_(5);
            }
        }

        var results = ThreadGroup.Run(ranks, group =>
        {
            using var replica = replicas[group.Rank];
            using var trainer = replica.Trainer(group);
            return trainer.EvaluateTest();
        });

        foreach (var result in results)
        {
            result.Count.Should().Be(8);
            result.Top1.Should().Equal(expected.Top1, "the counts are added over the ranks, each image counted once");
            result.Top5.Should().Be(expected.Top5);
            // Each batch's cross-entropy is a float32 sum; other batches, other roundings.
            result.Loss.Should().BeApproximately(expected.Loss, 1e-6 * expected.Loss);
        }

        ranks[0].Traffic.Elements.Should().Be(expected.Top1.Count + 2, "one all-reduce carries every head's hits, the top-5 hits and the loss sum");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Two_mpi_ranks_train_the_weights_of_one_process_accumulating_their_two_micro_batches(bool mpich)
    {
        var (code, output) = Mpirun("train", _dir.FullName, mpich);
        code.Should().Be(0, output);

        EachRankMatchesTheReference();
    }

    [Theory]
    [InlineData(false, @"^MPI \(Open MPI v\d+\.\d+\.\d+\), 2 ranks$")]
    [InlineData(true, @"^MPI \(MPICH \d+\.\d+\.\d+\), 2 ranks$")]
    public void Mpi_collectives_sum_average_broadcast_and_gather_over_the_ranks(bool mpich, string description)
    {
        // With both MPIs installed, as Debian allows, each launcher gets its own library: MPICH's handles are integers.
        var (code, output) = Mpirun("collectives", _dir.FullName, mpich);
        code.Should().Be(0, output);
        foreach (var rank in new[] { 0, 1 })
        {
            var lines = File.ReadAllLines(Path.Combine(_dir.FullName, $"rank{rank}.txt"));
            lines[0].Should().MatchRegex(description);
            lines[1].Should().Be("3 3 3 3 3", "float32 1 + 2");
            lines[2].Should().Be("1.5 1.5 1.5", "float64 (1 + 2) / 2");
            lines[3].Should().Be("17 17 17 17", "rank 1's int64 values");
            lines[4].Should().Be("0 1.5");
            lines[5].Should().Be("44", "5 float32 and 3 float64 values all-reduced: 20 + 24 bytes");
        }
    }

    [Fact]
    public void A_rank_that_stops_calling_makes_the_others_give_up_at_the_deadline_not_hang()
    {
        var clock = Stopwatch.StartNew();
        var (code, output) = Mpirun("stall", "");
        clock.Stop();
        code.Should().NotBe(0);
        output.Should().Contain("Rank 0 of 2: the barrier waited 3 s for the other ranks; one of them has stopped or is stuck");
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(25), "the stalled rank sleeps 30 s; the job must end before");
    }

    [Theory]
    [InlineData(false, @"process rank 1 .* exited on signal 9")]
    [InlineData(true, @"EXIT CODE: 9")]
    public void A_rank_killed_mid_epoch_stops_the_other_within_seconds(bool mpich, string launcherSays)
    {
        var clock = Stopwatch.StartNew();
        var (code, output) = Mpirun("die", "1", mpich);
        clock.Stop();
        code.Should().NotBe(0);

        // Open MPI's mpirun names the rank that died and how; MPICH's mpiexec names its process id and the signal.
        output.Should().MatchRegex(launcherSays);
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(60), output);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_rank_that_fails_names_itself_and_the_reason_and_the_job_ends_at_once(bool mpich)
    {
        var clock = Stopwatch.StartNew();
        var (code, output) = Mpirun("fail", "", mpich);
        clock.Stop();
        code.Should().NotBe(0);
        output.Should().Contain("rank 1: InvalidOperationException: rank 1 fails on purpose at step 1");
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(30), "Abort ends rank 0 at once, not at its 60-second deadline");
    }

    [Fact]
    public void The_launcher_s_rank_and_size_are_read_from_open_mpi_pmi_or_slurm_and_nonsense_is_named()
    {
        LaunchEnvironment.Detect(new Dictionary<string, string?>()).Should().BeNull();
        LaunchEnvironment.Detect(new Dictionary<string, string?> { ["OMPI_COMM_WORLD_RANK"] = "1", ["OMPI_COMM_WORLD_SIZE"] = "4" })
            .Should().Be(new LaunchEnvironment(1, 4, "Open MPI"));
        LaunchEnvironment.Detect(new Dictionary<string, string?> { ["PMI_RANK"] = "0", ["PMI_SIZE"] = "2" })!.Source.Should().Be("PMI (MPICH, Intel MPI)");
        LaunchEnvironment.Detect(new Dictionary<string, string?> { ["SLURM_PROCID"] = "3", ["SLURM_NTASKS"] = "8" }).Should().Be(new LaunchEnvironment(3, 8, "Slurm"));
        var act = () => LaunchEnvironment.Detect(new Dictionary<string, string?> { ["SLURM_PROCID"] = "8", ["SLURM_NTASKS"] = "8" });
        act.Should().Throw<FormatException>().WithMessage("SLURM_PROCID='8' and SLURM_NTASKS='8' (Slurm) are not a rank from 0 below a world size of 1 or more.");
    }

    [Fact]
    public void Two_ranks_stopped_mid_epoch_by_one_of_them_resume_from_rank_0_s_checkpoint_exactly()
    {
        var reference = Reference();
        var ranks = ThreadGroup.Create(2);
        var replicas = ranks.Select(_ => new DataParallelScenario.Replica()).ToArray();
        var stopped = ThreadGroup.Run(ranks, group =>
        {
            using var replica = replicas[group.Rank];
            using var trainer = replica.Trainer(group, _dir.FullName);
            using var stop = new CancellationTokenSource();

            // Only rank 0 is asked to stop (one rank's SIGINT); both must stop at the same step.
            if (group.Rank == 0)
            {
                trainer.Callbacks.Add(new DataParallelScenario.StopAfter(1, 0, stop));
            }

            return (trainer.Run(stop.Token).Cancelled, trainer.NextEpoch, trainer.NextStep);
        });
        stopped.Should().AllBeEquivalentTo((true, 1, 1));
        var checkpoint = Path.Combine(_dir.FullName, "last.ckpt");
        TrainerCheckpoint.ReadSummary(checkpoint).StepsDone.Should().Be(1);

        var weights = ResumedWeights(checkpoint);
        MaxGap(weights[0], reference).Should().BeLessThan(1e-10);
        MaxGap(weights[1], reference).Should().BeLessThan(1e-10, "rank 1 resumed its own history rows from rank 0's file");

        // One process cannot continue a two-rank run: its history holds only rank 0's rows.
        using var single = new DataParallelScenario.Replica();
        using var alone = single.Trainer(null);
        var act = () => alone.LoadCheckpoint(checkpoint);
        act.Should().Throw<InvalidDataException>().WithMessage($"Cannot resume '{checkpoint}' with 1 rank (the run trained with 2: each rank's historical teacher holds its own samples' rows; resume with 2).");
    }

    [Fact]
    public void A_rank_whose_batch_cannot_be_read_stops_both_at_that_step_checkpointed_and_the_run_resumes_exactly()
    {
        var reference = Reference();
        var ranks = ThreadGroup.Create(2);
        var replicas = ranks.Select(_ => new DataParallelScenario.Replica()).ToArray();
        var faults = ThreadGroup.Run(ranks, group =>
        {
            using var replica = replicas[group.Rank];

            // Rank 1's reader fails at epoch 1, step 1 (a file of its shard deleted under a streaming run).
            using var source = new FailingSource(replica.Train, epoch: group.Rank == 1 ? 1 : -1, step: 1);
            using var trainer = replica.Trainer(group, _dir.FullName, train: source);
            try
            {
                trainer.Run();
                return null;
            }
            catch (TrainingDataException ex)
            {
                return ex;
            }
        });
        var checkpoint = Path.Combine(_dir.FullName, "last.ckpt");
        faults.Should().AllSatisfy(f => (f!.Epoch, f.Step, f.Checkpoint).Should().Be((1, 1, checkpoint)));
        faults[1]!.Message.Should().StartWith($"Rank 1 could not read its training batch: '{FailingSource.File}' is gone.");
        faults[0]!.InnerException.Should().BeNull();
        faults[0]!.Message.Should().Be($"Rank 1 could not read its training batch (its own error names the file); training stopped at epoch 1 (0-based), step 1, and '{checkpoint}' holds every step before it.");

        var weights = ResumedWeights(checkpoint);
        MaxGap(weights[0], reference).Should().BeLessThan(1e-10);
        MaxGap(weights[1], reference).Should().BeLessThan(1e-10);
    }

    [Fact]
    public void Two_mpi_ranks_checkpoint_and_resume_exactly()
    {
        var (code, output) = Mpirun("resume", _dir.FullName);
        code.Should().Be(0, output);
        File.Exists(Path.Combine(_dir.FullName, "last.ckpt")).Should().BeTrue("rank 0 wrote the checkpoint");
        EachRankMatchesTheReference();
    }

    /// <summary>One process: each step, rank 0's and rank 1's micro-batches in turn, each loss halved, one optimizer step.</summary>
    /// <summary>
    /// The scenario trained by one process: each step accumulates the ranks' two micro-batches (batch norm per rank), or
    /// with <paramref name="wholeBatch"/> takes them as one batch (what synchronised batch norms must equal).
    /// </summary>
    private static double[] Reference(bool wholeBatch = false)
    {
        var (train, test) = DataParallelScenario.Data();
        using var _ = train;
        using var __ = test;
        using var model = DataParallelScenario.Model();
        ((nn.Module)model).to(ScalarType.Float64);
        using var loss = DataParallelScenario.Loss(model);
        var options = DataParallelScenario.Options(null);
        using var optimizer = optim.SGD(model.parameters(), options.LearningRate, options.Momentum, 0, options.WeightDecay, options.Nesterov);
        var orders = new[] { 0, 1 }.Select(r => new EpochOrder(DataParallelScenario.Samples, options, new FixedRank(r, 2))).ToArray();
        using var images = train.Images.alias();
        for (var epoch = 0; epoch < DataParallelScenario.Epochs; epoch++)
        {
            model.train();
            var epochOrders = orders.Select(o => o.For(epoch)).ToArray();
            var steps = (int)epochOrders[0].shape[0] / DataParallelScenario.Batch;
            for (var step = 0; step < steps; step++)
            {
                using var scope = NewDisposeScope();
                optimizer.zero_grad();
                if (wholeBatch)
                {
                    var both = cat(epochOrders.Select(o => o.narrow(0, step * DataParallelScenario.Batch, DataParallelScenario.Batch)).ToArray(), 0);
                    var batch = DataParallelScenario.Augmentation.Augment(images.index(both), options.Seed, epoch, step * 2).to(ScalarType.Float64);
                    using var output = model.call(batch);
                    using var result = loss.Compute(output, train.Labels.index(both), both, epoch, DataParallelScenario.Epochs);
                    result.Total.backward();
                    optimizer.step();
                    continue;
                }

                for (var rank = 0; rank < 2; rank++)
                {
                    var indices = epochOrders[rank].narrow(0, step * DataParallelScenario.Batch, DataParallelScenario.Batch);
                    var batch = DataParallelScenario.Augmentation.Augment(images.index(indices), options.Seed, epoch, (step * 2) + rank).to(ScalarType.Float64);
                    using var output = model.call(batch);
                    using var result = loss.Compute(output, train.Labels.index(indices), indices, epoch, DataParallelScenario.Epochs);
                    result.Total.div(2).backward();
                }

                optimizer.step();
            }

            foreach (var order in epochOrders)
            {
                order.Dispose();
            }
        }

        return DataParallelScenario.Weights(model);
    }

    /// <summary>Each MPI rank's final weights (written by the worker) against the reference, computed on one torch thread as each rank ran.</summary>
    private void EachRankMatchesTheReference(bool wholeBatch = false)
    {
        var tolerance = wholeBatch ? WholeBatchTolerance : 1e-10;
        // One thread, as each rank: every sum adds in the same order.
        var threads = get_num_threads();
        set_num_threads(1);
        double[] reference;
        try
        {
            reference = Reference(wholeBatch);
        }
        finally
        {
            set_num_threads(threads);
        }

        foreach (var rank in new[] { 0, 1 })
        {
            var weights = File.ReadAllLines(Path.Combine(_dir.FullName, $"rank{rank}.txt")).Select(l => double.Parse(l, CultureInfo.InvariantCulture)).ToArray();
            weights.Should().HaveCount(reference.Length);
            MaxGap(weights, reference).Should().BeLessThan(tolerance, $"rank {rank}");
        }
    }

    /// <summary>Two fresh thread ranks that load <paramref name="checkpoint"/> and train to the end: each rank's weights.</summary>
    private static double[][] ResumedWeights(string checkpoint, bool shardedHistory = false)
    {
        var ranks = ThreadGroup.Create(2);
        var fresh = ranks.Select(g => new DataParallelScenario.Replica(shardOf: shardedHistory ? g : null)).ToArray();
        return ThreadGroup.Run(ranks, group =>
        {
            using var replica = fresh[group.Rank];
            using var trainer = replica.Trainer(group);
            trainer.LoadCheckpoint(checkpoint);
            trainer.Run();
            return DataParallelScenario.Weights(replica.Model);
        });
    }

    private static double MaxGap(double[] a, double[] b) => a.Zip(b).Max(p => Math.Abs(p.First - p.Second));

    private static (int Code, string Output) Mpirun(string mode, string argument, bool mpich = false)
    {
        var worker = typeof(DataParallelTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "MpiWorker").Value!;
        string[] rest = ["dotnet", worker, mode, .. argument.Length > 0 ? new[] { argument } : []];
        var info = mpich
            ? new ProcessStartInfo(
                File.Exists("/usr/bin/mpiexec.mpich") ? "/usr/bin/mpiexec.mpich" : throw new InvalidOperationException("MPICH is not installed: the MPICH tests need it beside Open MPI (Debian/Ubuntu: sudo apt-get install mpich)."),
                ["-n", "2", .. rest])
            : new ProcessStartInfo(
                new[] { "/usr/bin/mpirun.openmpi", "/usr/bin/mpirun", "/usr/local/bin/mpirun" }.FirstOrDefault(File.Exists)
                    ?? throw new InvalidOperationException("mpirun is not installed: the data-parallel tests need Open MPI (Debian/Ubuntu: sudo apt-get install openmpi-bin libopenmpi-dev)."),
                ["--allow-run-as-root", "--oversubscribe", "-np", "2", .. rest]);
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        using var process = Process.Start(info)!;
        var errors = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"mpirun {mode} ran past 3 minutes: {output.Result}{errors.Result}");
        }

        return (process.ExitCode, output.Result + errors.Result);
    }

    /// <summary>A rank of a group that is never called: what the epoch order of that rank is.</summary>
    private sealed class FixedRank(int rank, int size) : IProcessGroup
    {
        public int Rank => rank;

        public int WorldSize => size;

        public string Description => $"rank {rank} of {size}";

        public void AllReduce(Tensor values, ReduceOperation operation) => throw new NotSupportedException();

        public void Broadcast(Tensor values, int root) => throw new NotSupportedException();

        public void Barrier() => throw new NotSupportedException();

        public double[] AllGather(double value) => throw new NotSupportedException();
    }
}
