namespace DTSKD.Core.Training;

/// <summary>How <see cref="IProcessGroup.AllReduce"/> combines the ranks' values.</summary>
public enum ReduceOperation
{
    /// <summary>The sum over the ranks.</summary>
    Sum,

    /// <summary>The sum over the ranks divided by their number.</summary>
    Average,
}
