using DTSKD.Core.Data;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>Measures every head's accuracy on an image source, with the counts kept on the device and read once.</summary>
public static class Evaluator
{
    /// <summary>
    /// Evaluates a float32 model in eval mode (its mode is restored afterwards). With another
    /// <paramref name="precision"/> the model is evaluated as the trainer evaluates it in that precision (its convolution and
    /// linear weights and the inputs in that format), which reproduces a half-precision run's own figures; the model is
    /// given back exactly as it was.
    /// </summary>
    /// <param name="model">The model, on <paramref name="device"/>.</param>
    /// <param name="source">The images to evaluate, in their order.</param>
    /// <param name="preprocessing">Supplies the test-time preparation (<see cref="IBatchAugmentation.Prepare"/>).</param>
    /// <param name="device">The model's device (CPU when null).</param>
    /// <param name="batchSize">Evaluation batch size (only memory depends on it).</param>
    /// <param name="precision">The number format to evaluate in.</param>
    public static EvaluationResult Evaluate(
        IMultiBranchModel model,
        IImageSource source,
        IBatchAugmentation preprocessing,
        Device? device = null,
        int batchSize = 500,
        TrainingPrecision precision = TrainingPrecision.Float32)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(preprocessing);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        using var reader = source.OpenReader(device ?? CPU);
        if (precision == TrainingPrecision.Float32)
        {
            return Evaluate(model, reader, source.Count, preprocessing, batchSize, InputFormat.Float32);
        }

        // The exact float32 values come back after the pass: converting to a half format and back would round them.
        var saved = model.state_dict().Where(kv => kv.Value.is_floating_point()).ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone().DetachFromDisposeScope());
        try
        {
            PrecisionPolicy.Convert(model, precision);
            return Evaluate(model, reader, source.Count, preprocessing, batchSize, new InputFormat(PrecisionPolicy.WeightTypeOf(precision), false));
        }
        finally
        {
            PrecisionPolicy.Convert(model, TrainingPrecision.Float32);
            using var noGrad = no_grad();
            var live = model.state_dict();
            foreach (var (name, value) in saved)
            {
                live[name].copy_(value);
                value.Dispose();
            }
        }
    }

    /// <summary>Evaluates a model in eval mode (its mode is restored afterwards) on the batches of a reader, in source order.</summary>
    /// <param name="model">The model, on the reader's device.</param>
    /// <param name="reader">The test set's reader.</param>
    /// <param name="count">N, the number of samples to evaluate (positions 0..N-1).</param>
    /// <param name="preprocessing">Supplies the test-time preparation.</param>
    /// <param name="batchSize">Evaluation batch size.</param>
    /// <param name="input">The number format and memory layout batches enter the model in.</param>
    /// <param name="group">
    /// With several ranks, each evaluates every <c>WorldSize</c>-th sample from its rank on and the counts and loss sums are
    /// added over the ranks (collective: every rank calls it; all get the whole set's figures). The ranks' models must be
    /// equal, buffers included.
    /// </param>
    internal static EvaluationResult Evaluate(IMultiBranchModel model, IBatchReader reader, int count, IBatchAugmentation preprocessing, int batchSize, InputFormat input, IProcessGroup? group = null)
    {
        var wasTraining = model.training;
        model.eval();
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var (rank, ranks) = group is { WorldSize: > 1 } ? (group.Rank, group.WorldSize) : (0, 1);
            using var order = arange(rank, count, ranks, ScalarType.Int64);
            Tensor? correct = null;
            Tensor? top5 = null;
            Tensor? loss = null;
            foreach (var batch in reader.Read(order, batchSize))
            {
                using var _ = batch;
                using var batchScope = NewDisposeScope();
                var x = input.Apply(preprocessing.Prepare(batch.Images));

                var y = batch.Labels;
                using var output = model.call(x);
                var hits = stack(output.Heads.Select(h => h.argmax(1).eq(y).sum()), 0);
                correct = (correct is null ? hits : correct.add(hits)).MoveToOuterDisposeScope();
                var k = Math.Min(5, output.Backbone.shape[1]);
                var (_, topIndices) = output.Backbone.topk((int)k, dim: 1);
                var inTop = topIndices.eq(y.unsqueeze(1)).any(1).sum();
                top5 = (top5 is null ? inTop : top5.add(inTop)).MoveToOuterDisposeScope();
                var ce = nn.functional.cross_entropy(output.Backbone.to(ScalarType.Float32), y, reduction: nn.Reduction.Sum).to(ScalarType.Float64);
                loss = (loss is null ? ce : loss.add(ce)).MoveToOuterDisposeScope();
            }

            // A rank with no sample of its own (more ranks than test samples) still takes part in the sums.
            var heads = model.BranchCount + 1;
            var sums = correct is null
                ? zeros(heads + 2, ScalarType.Float64)
                : cat([correct.to(ScalarType.Float64), top5!.to(ScalarType.Float64).reshape(1), loss!.reshape(1)]).cpu().contiguous();
            if (ranks > 1)
            {
                group!.AllReduce(sums, ReduceOperation.Sum);
            }

            // Counts below 2^53 are exact in float64, so the accuracies are the single process's to the last bit.
            var values = sums.data<double>().ToArray();
            var perHead = values.Take(heads).Select(c => 100.0 * c / count).ToArray();
            return new EvaluationResult(perHead, 100.0 * values[heads] / count, values[heads + 1] / count, count);
        }
        finally
        {
            model.train(wasTraining);
        }
    }
}
