using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// Batch normalisation whose statistics are those of every rank's batch together, forward and backward: the forward pass
/// all-reduces each channel's count, sum and sum of squares, the backward pass each channel's sum of the output gradient
/// and of its product with the normalised input, so each rank's input gradient is the one the whole batch's loss gives
/// (as PyTorch's SyncBatchNorm). Weight and bias gradients stay this rank's own: the gradient averaging adds them up.
/// </summary>
/// <remarks>
/// One all-reduce forward (every rank's count, mean and squared deviations, R x (2C + 1) float64 values) and one backward
/// (2C values). Half-precision inputs are normalised in float32, as LibTorch's own kernels do.
/// </remarks>
internal sealed class SyncBatchNormFunction : autograd.SingleTensorFunction<SyncBatchNormFunction>
{
    /// <inheritdoc />
    public override string Name => nameof(SyncBatchNormFunction);

    /// <summary>Normalises <paramref name="input"/> over every rank's batch.</summary>
    /// <param name="input">This rank's batch, (N, C, ...).</param>
    /// <param name="weight">The per-channel scale, or null.</param>
    /// <param name="bias">The per-channel shift, or null.</param>
    /// <param name="batch">The group and epsilon in; the whole batch's mean, variance and count out (for the running statistics).</param>
    public static Tensor Apply(Tensor input, Tensor? weight, Tensor? bias, SyncBatchNormBatch batch) => apply(input, weight!, bias!, batch);

    /// <inheritdoc />
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var input = (Tensor)vars[0];
        var weight = vars[1] as Tensor;
        var bias = vars[2] as Tensor;
        var batch = (SyncBatchNormBatch)vars[3];
        var type = ComputeType(input);
        var channels = input.shape[1];
        var shape = ChannelShape(input);

        // Each rank's count, mean and sum of squared deviations, gathered (one all-reduce of a table in which each rank
        // fills its own row) and combined as Chan et al.'s parallel variance, in the same order on every rank: pooled
        // features vary little about a large mean, where a sum of squares minus a squared sum would lose most digits.
        var ranks = batch.Group.WorldSize;
        var localCount = input.numel() / channels;
        var (localMean, localVariance) = LocalStatistics(input, weight?.dtype ?? type, localCount);
        var table = zeros([ranks, (2 * channels) + 1], ScalarType.Float64);
        var row = table[batch.Group.Rank];
        row[0].fill_(localCount);
        row.narrow(0, 1, channels).copy_(localMean.to(ScalarType.Float64, CPU));
        row.narrow(0, 1 + channels, channels).copy_(localVariance.to(ScalarType.Float64, CPU) * localCount);
        batch.Group.AllReduce(table, ReduceOperation.Sum);

        var counts = table.narrow(1, 0, 1);
        var count = counts.sum().item<double>();
        var means = table.narrow(1, 1, channels);
        var mean = (means * counts).sum(dim: 0) / count;
        var variance = (table.narrow(1, 1 + channels, channels).sum(dim: 0) + ((means - mean).square() * counts).sum(dim: 0)) / count;
        (batch.Mean, batch.Variance, batch.Count) = (mean, variance, count);

        // With the whole batch's statistics the normalisation itself is LibTorch's own (inference) kernel, in the
        // input's format; only the statistics and the gradient's two reductions are ours.
        var statisticsType = weight?.dtype ?? type;
        var output = nn.functional.batch_norm(input, mean.to(statisticsType, input.device), variance.to(statisticsType, input.device), weight, bias, training: false, eps: batch.Epsilon);

        var meanX = mean.to(type, input.device).view(shape);
        var invStd = variance.add(batch.Epsilon).rsqrt().to(type, input.device).view(shape);
        ctx.save_for_backward(weight is null ? [input, meanX, invStd] : [input, meanX, invStd, weight]);
        ctx.save_data("group", batch.Group);
        ctx.save_data("count", count);
        ctx.save_data("bias", bias is not null);
        return output;
    }

    /// <inheritdoc />
    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
    {
        var saved = ctx.get_saved_variables();
        var (input, mean, invStd) = (saved[0], saved[1], saved[2]);
        var weight = saved.Count > 3 ? saved[3] : null;
        var group = (IProcessGroup)ctx.get_data("group");
        var count = (double)ctx.get_data("count");
        var hasBias = (bool)ctx.get_data("bias");
        var channels = input.shape[1];
        var shape = ChannelShape(input);
        var reduce = ReducedDimensions(input);
        var type = mean.dtype;

        var dy = grad_output.to(type);
        var centred = input.to(type) - mean;
        var sumDy = dy.sum(reduce);
        var sumDyX = (dy * centred).sum(reduce) * invStd.view(channels);

        // The parameters' gradients are this rank's share; the step's gradient averaging combines them as any other's.
        var gradWeight = weight is null ? null : sumDyX.to(weight.dtype);
        var gradBias = hasBias ? sumDy.to(weight?.dtype ?? type) : null;

        var sums = cat([sumDy, sumDyX], 0).to(ScalarType.Float64, CPU).contiguous();
        group.AllReduce(sums, ReduceOperation.Sum);
        var meanDy = (sums.narrow(0, 0, channels) / count).to(type, input.device).view(shape);
        var meanDyX = (sums.narrow(0, channels, channels) / count).to(type, input.device).view(shape);
        var scale = weight is null ? invStd : invStd * weight.to(type).view(shape);

        // (dy - mean(dy) - x̂ mean(dy x̂)) γ / σ, in two fused passes.
        var inner = dy.addcmul(centred, invStd * meanDyX, -1);
        var gradInput = (meanDy * scale).neg().addcmul(inner, scale, 1).to(input.dtype);
        return [gradInput, gradWeight!, gradBias!, null!];
    }

    /// <summary>This rank's per-channel mean and biased variance, from LibTorch's own batch-norm kernel.</summary>
    /// <remarks>
    /// A reduction over (N, H, W) of an NCHW tensor is several times slower on CPU than the batch-norm kernel, which
    /// computes the same statistics (in float32 or better, for any input format) and, with momentum 1, writes them into
    /// the running buffers it is given. Its normalised output is not used.
    /// </remarks>
    private static (Tensor Mean, Tensor Variance) LocalStatistics(Tensor input, ScalarType type, long count)
    {
        if (count == 1)
        {
            // One value per channel: its own mean, no spread (the kernel refuses it; the whole batch may not be one value).
            return (input.reshape(input.shape[1]).to(type), zeros([input.shape[1]], type, input.device));
        }

        var mean = zeros([input.shape[1]], type, input.device);
        var unbiased = ones([input.shape[1]], type, input.device);
        using (nn.functional.batch_norm(input, mean, unbiased, training: true, momentum: 1.0))
        {
        }

        return (mean, unbiased * ((count - 1) / (double)count));
    }

    private static ScalarType ComputeType(Tensor input) => input.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;

    private static long[] ChannelShape(Tensor input) => [.. Enumerable.Range(0, (int)input.dim()).Select(d => d == 1 ? input.shape[1] : 1L)];

    private static long[] ReducedDimensions(Tensor input) => [.. Enumerable.Range(0, (int)input.dim()).Where(d => d != 1).Select(d => (long)d)];
}
