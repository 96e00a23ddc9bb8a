namespace DTSKD.Core.Training;

/// <summary>What one epoch of training measured.</summary>
/// <param name="Epoch">The 0-based epoch.</param>
/// <param name="LearningRate">The learning rate used.</param>
/// <param name="Alpha">alpha_t of the historical teacher, or null when the objective has none.</param>
/// <param name="TrainLoss">The mean total training loss (per sample).</param>
/// <param name="TrainComponents">The mean of each named loss component over the epoch.</param>
/// <param name="TrainTop1">The backbone's top-1 accuracy (%) on the augmented training batches.</param>
/// <param name="TestTop1">Top-1 accuracy (%) on the test set per head, backbone first.</param>
/// <param name="TestTop5">The backbone's top-5 accuracy (%) on the test set.</param>
/// <param name="TestLoss">The backbone's mean cross-entropy on the test set.</param>
/// <param name="ImagesPerSecond">Training throughput (images per second, evaluation excluded).</param>
/// <param name="TrainSeconds">Wall time of the epoch's training steps.</param>
public sealed record EpochMetrics(
    int Epoch,
    double LearningRate,
    double? Alpha,
    double TrainLoss,
    IReadOnlyDictionary<string, double> TrainComponents,
    double TrainTop1,
    IReadOnlyList<double> TestTop1,
    double TestTop5,
    double TestLoss,
    double ImagesPerSecond,
    double TrainSeconds)
{
    /// <summary>The backbone's test top-1 (%), the accuracy the paper reports.</summary>
    public double BackboneTop1 => TestTop1[0];
}
