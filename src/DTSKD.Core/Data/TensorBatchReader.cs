using static TorchSharp.torch;

namespace DTSKD.Core.Data;

/// <summary>
/// Batches of images and labels held in two tensors: gathered on the device from a copy made there once (which the reader
/// owns), or, on the CPU, straight from the source's tensors.
/// </summary>
internal sealed class TensorBatchReader : IBatchReader
{
    private readonly Tensor _images;
    private readonly Tensor _labels;
    private readonly Device _device;
    private readonly bool _owns;

    public TensorBatchReader(Tensor images, Tensor labels, Device device)
    {
        _device = device;
        _owns = device.type != TorchSharp.DeviceType.CPU;
        _images = _owns ? images.to(device).DetachFromDisposeScope() : images;
        _labels = _owns ? labels.to(device).DetachFromDisposeScope() : labels;
    }

    public IEnumerable<ImageBatch> Read(Tensor order, int batchSize, int firstStep = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(order);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(firstStep);
        TensorChecks.IndexVector(order, nameof(order), order.dim() == 1 ? order.shape[0] : -1, _labels.shape[0], "sample positions");
        return Batches(order.to(ScalarType.Int64, _device).DetachFromDisposeScope(), batchSize, firstStep, cancellationToken);
    }

    public void Dispose()
    {
        if (_owns)
        {
            _images.Dispose();
            _labels.Dispose();
        }
    }

    private IEnumerable<ImageBatch> Batches(Tensor order, int batchSize, int firstStep, CancellationToken cancellationToken)
    {
        // The order lives on the device for the whole pass: each batch slices it, with no copy from the host.
        using (order)
        {
            var n = order.shape[0];
            for (var step = firstStep; (long)step * batchSize < n; step++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                ImageBatch batch;
                using (var scope = NewDisposeScope())
                {
                    var idx = order.narrow(0, (long)step * batchSize, Math.Min(batchSize, n - ((long)step * batchSize)));
                    batch = new ImageBatch(_images.index_select(0, idx), _labels.index_select(0, idx), idx.clone(), step);
                }

                yield return batch;
            }
        }
    }
}
