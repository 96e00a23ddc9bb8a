using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>One process training alone: rank 0 of 1, every collective returns its input.</summary>
public sealed class SingleProcessGroup : IProcessGroup
{
    private SingleProcessGroup()
    {
    }

    /// <summary>The one instance.</summary>
    public static SingleProcessGroup Instance { get; } = new();

    /// <inheritdoc />
    public int Rank => 0;

    /// <inheritdoc />
    public int WorldSize => 1;

    /// <inheritdoc />
    public string Description => "one process";

    /// <inheritdoc />
    public void AllReduce(Tensor values, ReduceOperation operation) => ArgumentNullException.ThrowIfNull(values);

    /// <inheritdoc />
    public void Broadcast(Tensor values, int root)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentOutOfRangeException.ThrowIfNotEqual(root, 0);
    }

    /// <inheritdoc />
    public void Barrier()
    {
    }

    /// <inheritdoc />
    public double[] AllGather(double value) => [value];
}
