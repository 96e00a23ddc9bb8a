using DTSKD.Core.Models;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// Keeps the ranks' copies of the model identical, as DistributedDataParallel does: every parameter and buffer from rank 0
/// when a run starts (a resumed run included: every rank read the same checkpoint, rank 0's copy decides), and the
/// buffers (batch norms' running statistics) from rank 0 before every step, so that each rank normalises its own batch
/// (batch norm per rank) while the statistics a checkpoint or an evaluation sees are one copy's.
/// </summary>
internal static class ReplicaSync
{
    /// <summary>Rank 0's parameters and buffers on every rank.</summary>
    public static void Everything(IMultiBranchModel model, IProcessGroup group)
    {
        if (group.WorldSize == 1)
        {
            return;
        }

        using var noGrad = no_grad();
        foreach (var (_, parameter) in model.named_parameters())
        {
            group.Broadcast(parameter, 0);
        }

        Buffers(model, group);
    }

    /// <summary>Rank 0's buffers on every rank.</summary>
    public static void Buffers(IMultiBranchModel model, IProcessGroup group)
    {
        if (group.WorldSize == 1)
        {
            return;
        }

        using var noGrad = no_grad();
        foreach (var buffer in model.modules().SelectMany(m => m.named_buffers(recurse: false)).Select(b => b.buffer))
        {
            group.Broadcast(buffer, 0);
        }
    }
}
