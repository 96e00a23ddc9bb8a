using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>What one synchronised batch norm call takes (group, epsilon) and gives back (the whole batch's statistics).</summary>
internal sealed class SyncBatchNormBatch(IProcessGroup group, double epsilon)
{
    /// <summary>The ranks whose batches are normalised together.</summary>
    public IProcessGroup Group { get; } = group;

    /// <summary>Added to the variance.</summary>
    public double Epsilon { get; } = epsilon;

    /// <summary>The whole batch's per-channel mean (float64, CPU), after the forward pass.</summary>
    public Tensor? Mean { get; set; }

    /// <summary>The whole batch's per-channel biased variance (float64, CPU), after the forward pass.</summary>
    public Tensor? Variance { get; set; }

    /// <summary>Values per channel over every rank's batch.</summary>
    public double Count { get; set; }
}
