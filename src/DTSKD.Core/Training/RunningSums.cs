using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// The sums of an epoch, kept on the training device so steps never wait for the device; read only at log
/// intervals and at the epoch's end. Owns its tensors.
/// </summary>
internal sealed class RunningSums : IDisposable
{
    private readonly Device _device;
    private readonly Dictionary<string, Tensor> _components = new(StringComparer.Ordinal);
    private readonly Tensor _loss;
    private readonly Tensor _correct;
    private readonly Tensor _firstBad;
    private long _samples;

    public RunningSums(Device device)
    {
        _device = device;
        _loss = zeros([], ScalarType.Float64, device).DetachFromDisposeScope();
        _correct = zeros([], ScalarType.Int64, device).DetachFromDisposeScope();
        _firstBad = full([], long.MaxValue, ScalarType.Int64, device).DetachFromDisposeScope();
    }

    public double Seconds { get; set; }

    public double? Alpha { get; private set; }

    public void Add(MultiBranchLossResult result, Tensor backboneLogits, Tensor labels, int step)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var batch = labels.shape[0];
        var total = result.Total.detach();
        _loss.add_(total.to(ScalarType.Float64).mul(batch));
        foreach (var (name, value) in result.Components)
        {
            if (!_components.TryGetValue(name, out var sum))
            {
                sum = zeros([], ScalarType.Float64, _device).DetachFromDisposeScope();
                _components[name] = sum;
            }

            sum.add_(value.detach().to(ScalarType.Float64).mul(batch));
        }

        _correct.add_(backboneLogits.argmax(1).eq(labels).sum());
        _firstBad.copy_(where(total.isfinite(), _firstBad, _firstBad.clamp_max(step)));
        _samples += batch;
        Alpha = result.Alpha;
    }

    public int? FirstNonFiniteStep()
    {
        var first = _firstBad.item<long>();
        return first == long.MaxValue ? null : (int)first;
    }

    public (long Samples, double Loss, double Top1) Running()
    {
        if (_samples == 0)
        {
            return (0, 0, 0);
        }

        return (_samples, _loss.item<double>() / _samples, 100.0 * _correct.item<long>() / _samples);
    }

    public Dictionary<string, double> ComponentMeans() =>
        _components.ToDictionary(kv => kv.Key, kv => _samples == 0 ? 0 : kv.Value.item<double>() / _samples);

    public PartialEpoch Snapshot() =>
        new(_samples, _loss.item<double>(), _correct.item<long>(), _components.ToDictionary(kv => kv.Key, kv => kv.Value.item<double>()), Alpha, Seconds);

    public void Restore(PartialEpoch? partial)
    {
        Reset();
        if (partial is null)
        {
            return;
        }

        using var noGrad = no_grad();
        _samples = partial.Samples;
        _loss.fill_(partial.LossSum);
        _correct.fill_(partial.Correct);
        foreach (var (name, value) in partial.ComponentSums)
        {
            if (!_components.TryGetValue(name, out var sum))
            {
                sum = zeros([], ScalarType.Float64, _device).DetachFromDisposeScope();
                _components[name] = sum;
            }

            sum.fill_(value);
        }

        Alpha = partial.Alpha;
        Seconds = partial.Seconds;
    }

    public void Reset()
    {
        using var noGrad = no_grad();
        _samples = 0;
        // Not zero_(): in TorchSharp it returns a second handle to the tensor, which would leak.
        _loss.fill_(0);
        _correct.fill_(0);
        _firstBad.fill_(long.MaxValue);
        foreach (var sum in _components.Values)
        {
            sum.fill_(0);
        }

        Alpha = null;
        Seconds = 0;
    }

    public void Dispose()
    {
        _loss.Dispose();
        _correct.Dispose();
        _firstBad.Dispose();
        foreach (var sum in _components.Values)
        {
            sum.Dispose();
        }
    }
}
