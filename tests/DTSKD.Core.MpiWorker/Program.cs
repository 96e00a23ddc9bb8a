using System.Globalization;
using DTSKD.Core;
using DTSKD.Core.MpiWorker;
using DTSKD.Core.Training;
using static TorchSharp.torch;

// One rank of a data-parallel test, started by mpirun: the first argument says which test, the second where to write.
//   collectives OUT   all-reduce, broadcast, barrier and all-gather; each rank writes what it received
//   train OUT         the float64 scenario trained by this rank; each rank writes its final weights
//   stall             rank 1 stops calling; rank 0's barrier must give up after its 3-second deadline (exit 3)
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

    case "train" or "die":
    {
        var (train, test) = DataParallelScenario.Data();
        using var _ = train;
        using var __ = test;
        using var model = DataParallelScenario.Model();
        using var loss = DataParallelScenario.Loss(model);
        using var trainer = new Trainer(model, loss, train, test, DataParallelScenario.Augmentation, DataParallelScenario.Options(group));
        if (mode == "die" && group.Rank == 1)
        {
            trainer.Callbacks.Add(new DieAt(int.Parse(output, CultureInfo.InvariantCulture)));
        }

        trainer.Run();
        if (mode == "train")
        {
            File.WriteAllLines(Path.Combine(output, $"rank{group.Rank}.txt"), DataParallelScenario.Weights(model).Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
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
