namespace DTSKD.Core.Training;

/// <summary>What one epoch of training measured.</summary>
public sealed record EpochMetrics
{
    /// <summary>Creates the record.</summary>
    /// <param name="epoch">The 0-based epoch.</param>
    /// <param name="learningRate">The learning rate used.</param>
    /// <param name="scalars">The objective's scalars (<see cref="MultiBranchLossResult.Scalars"/>) as of the epoch's last step.</param>
    /// <param name="trainLoss">The mean total training loss (per sample).</param>
    /// <param name="trainComponents">The mean of each named loss component over the epoch.</param>
    /// <param name="trainTop1">The backbone's top-1 accuracy (%) on the augmented training batches.</param>
    /// <param name="testTop1">Top-1 accuracy (%) on the test set per head, backbone first.</param>
    /// <param name="testTop5">The backbone's top-5 accuracy (%) on the test set.</param>
    /// <param name="testLoss">The backbone's mean cross-entropy on the test set.</param>
    /// <param name="imagesPerSecond">Training throughput (images per second, evaluation excluded).</param>
    /// <param name="trainSeconds">Wall time of the epoch's training steps.</param>
    /// <param name="epochSeconds">Wall time of the whole epoch: training steps and evaluation.</param>
    [System.Text.Json.Serialization.JsonConstructor]
    internal EpochMetrics(int epoch, double learningRate, IReadOnlyDictionary<string, double> scalars, double trainLoss, IReadOnlyDictionary<string, double> trainComponents, double trainTop1, IReadOnlyList<double> testTop1, double testTop5, double testLoss, double imagesPerSecond, double trainSeconds, double epochSeconds)
    {
        Epoch = epoch;
        LearningRate = learningRate;
        Scalars = scalars;
        TrainLoss = trainLoss;
        TrainComponents = trainComponents;
        TrainTop1 = trainTop1;
        TestTop1 = testTop1;
        TestTop5 = testTop5;
        TestLoss = testLoss;
        ImagesPerSecond = imagesPerSecond;
        TrainSeconds = trainSeconds;
        EpochSeconds = epochSeconds;
    }

    /// <summary>The 0-based epoch.</summary>
    public int Epoch { get; }

    /// <summary>The learning rate used.</summary>
    public double LearningRate { get; }

    /// <summary>The objective's scalars (<see cref="MultiBranchLossResult.Scalars"/>) as of the epoch's last step.</summary>
    public IReadOnlyDictionary<string, double> Scalars { get; }

    /// <summary>The mean total training loss (per sample).</summary>
    public double TrainLoss { get; }

    /// <summary>The mean of each named loss component over the epoch.</summary>
    public IReadOnlyDictionary<string, double> TrainComponents { get; }

    /// <summary>The backbone's top-1 accuracy (%) on the augmented training batches.</summary>
    public double TrainTop1 { get; }

    /// <summary>Top-1 accuracy (%) on the test set per head, backbone first.</summary>
    public IReadOnlyList<double> TestTop1 { get; }

    /// <summary>The backbone's top-5 accuracy (%) on the test set.</summary>
    public double TestTop5 { get; }

    /// <summary>The backbone's mean cross-entropy on the test set.</summary>
    public double TestLoss { get; }

    /// <summary>Training throughput (images per second, evaluation excluded).</summary>
    public double ImagesPerSecond { get; }

    /// <summary>Wall time of the epoch's training steps.</summary>
    public double TrainSeconds { get; }

    /// <summary>Wall time of the whole epoch: training steps and evaluation.</summary>
    public double EpochSeconds { get; }

    /// <summary>The backbone's test top-1 (%), the accuracy the paper reports.</summary>
    public double BackboneTop1 => TestTop1[0];
}
