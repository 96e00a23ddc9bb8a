using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// Makes every batch norm of a model that is training normalise over all ranks' batches together (as PyTorch's
/// <c>SyncBatchNorm</c>), for as long as it is not disposed, without replacing the modules: the networks, their state
/// dicts, the exporters and the fine-tuning code keep seeing <c>BatchNorm2d</c>.
/// </summary>
/// <remarks>
/// TorchSharp's hooks cannot skip a module's forward pass, so the pre-hook switches the batch norm to evaluation for one
/// sample of the batch (cheap, and it leaves the running statistics alone) and the post-hook returns the synchronised
/// output and updates the running statistics with the whole batch's, as the module would with its own. A batch norm
/// already in evaluation (frozen by fine-tuning) is left as it is.
/// </remarks>
internal sealed class SyncBatchNorm : IDisposable
{
    private readonly List<Action> _removers = [];

    private SyncBatchNorm(IEnumerable<BatchNorm> norms, IProcessGroup group)
    {
        foreach (var norm in norms)
        {
            Tensor? pending = null;
            var pre = norm.register_forward_pre_hook((module, input) =>
            {
                if (!module.training)
                {
                    return null!;
                }

                pending = input;
                module.train(false);
                return input.narrow(0, 0, 1);
            });
            var post = norm.register_forward_hook((module, _, output) =>
            {
                if (pending is not { } input)
                {
                    return null!;
                }

                pending = null;
                module.train(true);
                return Normalise(norm, input, group);
            });
            _removers.Add(pre.remove);
            _removers.Add(post.remove);
        }
    }

    /// <summary>Synchronises the batch norms among <paramref name="modules"/> over <paramref name="group"/>; with one rank there is nothing to do and nothing is hooked.</summary>
    public static SyncBatchNorm Attach(IEnumerable<nn.Module> modules, IProcessGroup group) =>
        new(group.WorldSize > 1 ? modules.OfType<BatchNorm>() : [], group);

    /// <summary>Removes the hooks: the batch norms are per rank again.</summary>
    public void Dispose()
    {
        _removers.ForEach(remove => remove());
        _removers.Clear();
    }

    private static Tensor Normalise(BatchNorm norm, Tensor input, IProcessGroup group)
    {
        var tracks = norm.track_running_stats && norm.running_mean is not null && norm.running_var is not null;
        var batch = new SyncBatchNormBatch(group, norm.eps);
        var output = SyncBatchNormFunction.Apply(input, norm.weight, norm.bias, batch);
        if (tracks)
        {
            using var noGrad = no_grad();
            var momentum = norm.momentum ?? 0;
            if (norm.num_batches_tracked is { } tracked)
            {
                tracked.add_(1);
                momentum = norm.momentum ?? 1.0 / tracked.item<long>();
            }

            // As the module's own update: the running variance is the unbiased one.
            var unbiased = batch.Variance! * (batch.Count / Math.Max(batch.Count - 1, 1));
            norm.running_mean!.mul_(1 - momentum).add_(batch.Mean!.to(norm.running_mean.dtype, norm.running_mean.device), momentum);
            norm.running_var!.mul_(1 - momentum).add_(unbiased.to(norm.running_var.dtype, norm.running_var.device), momentum);
        }

        return output;
    }
}
