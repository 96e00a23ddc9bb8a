namespace DTSKD.Core.Training;

/// <summary>Accuracy of every head of a multi-branch model on a dataset.</summary>
/// <param name="Top1">Top-1 accuracy (%) per head, backbone first.</param>
/// <param name="Top5">The backbone's top-5 accuracy (%).</param>
/// <param name="Loss">The backbone's mean cross-entropy.</param>
/// <param name="Count">The number of samples evaluated.</param>
public sealed record EvaluationResult(IReadOnlyList<double> Top1, double Top5, double Loss, int Count);
