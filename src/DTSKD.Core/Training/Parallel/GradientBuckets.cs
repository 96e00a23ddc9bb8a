using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// Averages the gradients of the parameters the optimizer steps over the ranks of a process group: the gradients of a
/// bucket (parameters of one device and type, up to <see cref="BucketBytes"/>) are copied into one flat buffer, the buffer is
/// all-reduced in one call, and the averages are copied back; one call per bucket, not per tensor. Owns the buffers.
/// </summary>
internal sealed class GradientBuckets : IDisposable
{
    /// <summary>PyTorch DistributedDataParallel's default bucket size (25 MiB).</summary>
    public const long BucketBytes = 25L << 20;

    private readonly IProcessGroup _group;
    private readonly List<(Parameter[] Parameters, Tensor Buffer)> _buckets = [];

    public GradientBuckets(IEnumerable<Parameter> parameters, IProcessGroup group, long bucketBytes = BucketBytes)
    {
        _group = group;
        foreach (var kind in parameters.Where(p => p.requires_grad).GroupBy(p => (p.device.ToString(), p.dtype)))
        {
            var bucket = new List<Parameter>();
            long bytes = 0;
            foreach (var parameter in kind)
            {
                bucket.Add(parameter);
                bytes += parameter.numel() * parameter.element_size();
                if (bytes >= bucketBytes)
                {
                    Add(bucket);
                    (bucket, bytes) = ([], 0);
                }
            }

            if (bucket.Count > 0)
            {
                Add(bucket);
            }
        }
    }

    /// <summary>The number of all-reduce calls per step.</summary>
    public int Count => _buckets.Count;

    /// <summary>Bytes all-reduced per step (every bucket's buffer).</summary>
    public long Bytes => _buckets.Sum(b => b.Buffer.numel() * b.Buffer.element_size());

    /// <summary>Replaces every gradient by its mean over the ranks; a parameter without a gradient counts as zeros and receives one.</summary>
    public void Average()
    {
        if (_group.WorldSize == 1)
        {
            return;
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (parameters, buffer) in _buckets)
        {
            long offset = 0;
            foreach (var p in parameters)
            {
                var slot = buffer.narrow(0, offset, p.numel());
                if (p.grad is { } grad)
                {
                    slot.copy_(grad.reshape(-1));
                }
                else
                {
                    slot.fill_(0);
                }

                offset += p.numel();
            }

            _group.AllReduce(buffer, ReduceOperation.Average);
            offset = 0;
            foreach (var p in parameters)
            {
                var average = buffer.narrow(0, offset, p.numel()).view(p.shape);
                if (p.grad is { } grad)
                {
                    grad.copy_(average);
                }
                else
                {
                    p.grad = average.clone();
                }

                offset += p.numel();
            }
        }
    }

    public void Dispose()
    {
        foreach (var (_, buffer) in _buckets)
        {
            buffer.Dispose();
        }

        _buckets.Clear();
    }

    private void Add(List<Parameter> bucket)
    {
        var first = bucket[0];
        var buffer = zeros([bucket.Sum(p => p.numel())], first.dtype, first.device).DetachFromDisposeScope();
        _buckets.Add(([.. bucket], buffer));
    }
}
