using System.Globalization;
using DTSKD.Core;
using DTSKD.Core.MpiWorker;
using DTSKD.Core.Training;
using static TorchSharp.torch;

// One rank of a data-parallel test, started by mpirun: the first argument says which test, the second where to write.
//   collectives OUT   all-reduce, broadcast, barrier and all-gather; each rank writes what it received
//   train OUT         the float64 scenario trained by this rank; each rank writes its final weights
//   sync-bn OUT       the same with synchronised batch norms
//   resume OUT        the scenario stopped by rank 0 alone after epoch 1's first step, checkpointed into OUT, resumed by
//                     fresh trainers; each rank writes its final weights
//   stall             rank 1 stops calling; rank 0's barrier must give up after its 3-second deadline (exit 3)
//   fail              rank 1 throws at a training step; its line names it, and the job ends at once
//   die STEP          rank 1 kills itself (SIGKILL) at a training step; the launcher must stop rank 0
set_num_threads(1);
var (mode, output) = (args[0], args.Length > 1 ? args[1] : "");
using var group = MpiProcessGroup.Start(mode == "stall" ? TimeSpan.FromSeconds(3) : TimeSpan.FromSeconds(60));
var launch = LaunchEnvironment.Detect();
if (launch is null || launch.Rank != group.Rank || launch.WorldSize != group.WorldSize)
{
    Console.Error.WriteLine($"rank {group.Rank}: the launcher's environment says {launch}");
    return 4;
}

try
{
    return Run();
}
catch (Exception ex)
{
    // What a rank that cannot go on does: say why, in one line, and end the job now rather than at the others' deadlines.
    Console.Error.WriteLine($"rank {group.Rank}: {ex.GetType().Name}: {ex.Message}");
    group.Abort(1);
    return 1;
}

int Run()
{
switch (mode)
{
    case "collectives":
    {
        using var f32 = full([5], group.Rank + 1.0f, ScalarType.Float32);
        group.AllReduce(f32, ReduceOperation.Sum);
        using var f64 = full([3], group.Rank + 1.0, ScalarType.Float64);
        group.AllReduce(f64, ReduceOperation.Average);
        using var ints = full([4], (long)(10 * group.Rank + 7), ScalarType.Int64);
        group.Broadcast(ints, 1);
        group.Barrier();
        var gathered = group.AllGather(group.Rank * 1.5);
        File.WriteAllLines(Path.Combine(output, $"rank{group.Rank}.txt"),
        [
            $"{group.Description}",
            string.Join(' ', f32.data<float>().ToArray().Select(v => v.ToString(CultureInfo.InvariantCulture))),
            string.Join(' ', f64.data<double>().ToArray().Select(v => v.ToString(CultureInfo.InvariantCulture))),
            string.Join(' ', ints.data<long>().ToArray()),
            string.Join(' ', gathered.Select(v => v.ToString(CultureInfo.InvariantCulture))),
            $"{group.AllReducedBytes}",
        ]);
        return 0;
    }

    case "train" or "sync-bn" or "die" or "fail":
    {
        using var replica = new DataParallelScenario.Replica();
        using var trainer = replica.Trainer(group, syncBatchNorm: mode == "sync-bn");
        if (mode == "die" && group.Rank == 1)
        {
            trainer.Callbacks.Add(new DieAt(int.Parse(output, CultureInfo.InvariantCulture)));
        }

        if (mode == "fail" && group.Rank == 1)
        {
            trainer.Callbacks.Add(new FailAt(1));
        }

        trainer.Run();
        if (mode is "train" or "sync-bn")
        {
            File.WriteAllLines(Path.Combine(output, $"rank{group.Rank}.txt"), DataParallelScenario.Weights(replica.Model).Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
        }

        return 0;
    }

    case "resume":
    {
        foreach (var pass in new[] { "stop", "resume" })
        {
            using var replica = new DataParallelScenario.Replica();
            using var trainer = replica.Trainer(group, output);
            using var stop = new CancellationTokenSource();
            if (pass == "stop" && group.Rank == 0)
            {
                trainer.Callbacks.Add(new DataParallelScenario.StopAfter(1, 0, stop));
            }

            if (pass == "resume")
            {
                trainer.LoadCheckpoint(Path.Combine(output, "last.ckpt"));
            }

            var result = trainer.Run(stop.Token);
            if (pass == "stop" && (!result.Cancelled || trainer.NextEpoch != 1 || trainer.NextStep != 1))
            {
                Console.Error.WriteLine($"rank {group.Rank}: stopped at epoch {trainer.NextEpoch} step {trainer.NextStep}, cancelled {result.Cancelled}; expected epoch 1 step 1");
                return 5;
            }

            if (pass == "resume")
            {
                File.WriteAllLines(Path.Combine(output, $"rank{group.Rank}.txt"), DataParallelScenario.Weights(replica.Model).Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
            }
        }

        return 0;
    }

    case "stall":
        if (group.Rank == 1)
        {
            Thread.Sleep(TimeSpan.FromSeconds(30));
            return 0;
        }

        try
        {
            group.Barrier();
            return 0;
        }
        catch (TimeoutException ex)
        {
            Console.Error.WriteLine(ex.Message);
            group.Abort(3);
            return 3;
        }

    default:
        Console.Error.WriteLine($"unknown mode '{mode}'");
        return 2;
}
}

/// <summary>Fails at a step, as a bad batch or a full disk would.</summary>
internal sealed class FailAt(int step) : TrainerCallback
{
    public override void OnStepEnd(Trainer trainer, TrainingStep done)
    {
        if (done.Step == step)
        {
            throw new InvalidOperationException($"rank 1 fails on purpose at step {step}");
        }
    }
}

/// <summary>Kills this process at a step, as the OOM killer or a lost node would.</summary>
internal sealed class DieAt(int step) : TrainerCallback
{
    public override void OnStepEnd(Trainer trainer, TrainingStep done)
    {
        if (done.Step == step)
        {
            System.Diagnostics.Process.GetCurrentProcess().Kill();
        }
    }
}
