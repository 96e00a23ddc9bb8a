using DTSKD.Core.Data;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>Measures every head's accuracy on a dataset, with the counts kept on the device and read once.</summary>
public static class Evaluator
{
    /// <summary>Evaluates a model in eval mode (its mode is restored afterwards).</summary>
    /// <param name="model">The model.</param>
    /// <param name="images">uint8 images [N, C, H, W], on the model's device.</param>
    /// <param name="labels">int64 labels [N], on the model's device.</param>
    /// <param name="preprocessing">Supplies the test-time normalisation.</param>
    /// <param name="batchSize">Evaluation batch size.</param>
    /// <param name="inputType">The format the model's weights are in (null: float32).</param>
    internal static EvaluationResult Evaluate(IMultiBranchModel model, Tensor images, Tensor labels, BatchAugmentation preprocessing, int batchSize, ScalarType? inputType = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(preprocessing);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);

        var wasTraining = model.training;
        model.eval();
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var n = images.shape[0];
            Tensor? correct = null;
            var top5 = zeros([], ScalarType.Int64, images.device);
            var loss = zeros([], ScalarType.Float64, images.device);
            for (long start = 0; start < n; start += batchSize)
            {
                using var batchScope = NewDisposeScope();
                var count = Math.Min(batchSize, n - start);
                var x = preprocessing.Normalize(images.narrow(0, start, count));
                if (inputType is { } type)
                {
                    x = x.to(type);
                }

                var y = labels.narrow(0, start, count);
                using var output = model.call(x);
                var hits = stack(output.Heads.Select(h => h.argmax(1).eq(y).sum()), 0);
                correct = (correct is null ? hits : correct.add(hits)).MoveToOuterDisposeScope();
                var k = Math.Min(5, output.Backbone.shape[1]);
                var (_, topIndices) = output.Backbone.topk((int)k, dim: 1);
                top5.add_(topIndices.eq(y.unsqueeze(1)).any(1).sum());
                loss.add_(nn.functional.cross_entropy(output.Backbone.to(ScalarType.Float32), y, reduction: nn.Reduction.Sum).to(ScalarType.Float64));
            }

            var perHead = correct!.cpu().data<long>().ToArray().Select(c => 100.0 * c / n).ToArray();
            return new EvaluationResult(perHead, 100.0 * top5.item<long>() / n, loss.item<double>() / n, (int)n);
        }
        finally
        {
            model.train(wasTraining);
        }
    }

    /// <summary>Evaluates a model on a dataset (moved to the model's device batch by batch).</summary>
    /// <param name="model">The model.</param>
    /// <param name="dataset">The dataset.</param>
    /// <param name="preprocessing">Supplies the test-time normalisation.</param>
    /// <param name="device">The model's device (CPU when null).</param>
    /// <param name="batchSize">Evaluation batch size.</param>
    /// <param name="inputType">The format of the model's weights and inputs (null: float32).</param>
    public static EvaluationResult Evaluate(IMultiBranchModel model, ImageDataset dataset, BatchAugmentation preprocessing, Device? device = null, int batchSize = 500, ScalarType? inputType = null)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        device ??= CPU;
        using var images = dataset.Images.to(device);
        using var labels = dataset.Labels.to(device);
        return Evaluate(model, images, labels, preprocessing, batchSize, inputType);
    }
}
