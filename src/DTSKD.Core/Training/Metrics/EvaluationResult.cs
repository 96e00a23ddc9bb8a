namespace DTSKD.Core.Training;

/// <summary>Accuracy of every head of a multi-branch model on a dataset.</summary>
public sealed record EvaluationResult
{
    /// <summary>Creates the record.</summary>
    /// <param name="top1">Top-1 accuracy (%) per head, backbone first.</param>
    /// <param name="top5">The backbone's top-5 accuracy (%).</param>
    /// <param name="loss">The backbone's mean cross-entropy.</param>
    /// <param name="count">The number of samples evaluated.</param>
    internal EvaluationResult(IReadOnlyList<double> top1, double top5, double loss, int count)
    {
        Top1 = top1;
        Top5 = top5;
        Loss = loss;
        Count = count;
    }

    /// <summary>Top-1 accuracy (%) per head, backbone first.</summary>
    public IReadOnlyList<double> Top1 { get; }

    /// <summary>The backbone's top-5 accuracy (%).</summary>
    public double Top5 { get; }

    /// <summary>The backbone's mean cross-entropy.</summary>
    public double Loss { get; }

    /// <summary>The number of samples evaluated.</summary>
    public int Count { get; }
}
