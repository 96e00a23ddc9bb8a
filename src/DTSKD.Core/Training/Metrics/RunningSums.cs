using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// The sums of an epoch, kept on the training device so steps never wait for the device; read only at log
/// intervals and at the epoch's end. Owns its tensors.
/// </summary>
internal sealed class RunningSums : IDisposable
{
    private readonly Device _device;
    private string[] _componentNames = [];
    private Tensor? _componentSums;
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

    /// <summary>The objective's scalars as of the last step added.</summary>
    public IReadOnlyDictionary<string, double> Scalars { get; private set; } = new Dictionary<string, double>();

    public void Add(MultiBranchLossResult result, Tensor backboneLogits, Tensor labels, int step, bool guardNonFinite = true)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var batch = labels.shape[0];
        var total = result.Total.detach();
        var finite = total.isfinite();

        // Skipped (overflowed) float16 steps count as zero, so one of them does not turn the epoch's mean into inf.
        _loss.add_(where(finite, total, zeros_like(total)).to(ScalarType.Float64).mul(batch));
        if (_componentSums is null || !result.Components.Keys.SequenceEqual(_componentNames))
        {
            if (_componentSums is not null)
            {
                throw new InvalidOperationException(
                    $"The objective's components changed from [{string.Join(", ", _componentNames)}] to [{string.Join(", ", result.Components.Keys)}] within a run.");
            }

            _componentNames = [.. result.Components.Keys];
            _componentSums = zeros([_componentNames.Length], ScalarType.Float64, _device).DetachFromDisposeScope();
        }

        var components = stack(result.Components.Values, 0).detach();
        _componentSums.add_(components.nan_to_num(0, 0, 0).to(ScalarType.Float64).mul(batch));
        _correct.add_(backboneLogits.argmax(1).eq(labels).sum());
        if (guardNonFinite)
        {
            _firstBad.copy_(where(finite, _firstBad, _firstBad.clamp_max(step)));
        }
        _samples += batch;
        Scalars = result.Scalars;
    }

    /// <summary>
    /// Replaces this rank's sums with the sums over every rank (samples, loss, correct, components: one float64 all-reduce,
    /// exact for counts below 2^53) and the first non-finite step with the earliest any rank saw, so every rank closes the
    /// epoch with the same metrics.
    /// </summary>
    public void Combine(IProcessGroup group)
    {
        if (group.WorldSize == 1)
        {
            return;
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var parts = new List<Tensor> { tensor(new double[] { _samples }, ScalarType.Float64), _loss.reshape(1).cpu(), _correct.reshape(1).to(ScalarType.Float64).cpu() };
        if (_componentSums is not null)
        {
            parts.Add(_componentSums.cpu());
        }

        var all = cat(parts).contiguous();
        group.AllReduce(all, ReduceOperation.Sum);
        var values = all.data<double>().ToArray();
        _samples = (long)values[0];
        _loss.fill_(values[1]);
        _correct.fill_((long)values[2]);
        _componentSums?.copy_(all.narrow(0, 3, _componentSums.shape[0]));
        var mine = _firstBad.item<long>();
        var firstBad = group.AllGather(mine == long.MaxValue ? double.PositiveInfinity : mine).Min();
        _firstBad.fill_(double.IsPositiveInfinity(firstBad) ? long.MaxValue : (long)firstBad);
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
        ComponentSums().ToDictionary(kv => kv.Key, kv => _samples == 0 ? 0 : kv.Value / _samples);

    public PartialEpoch Snapshot() =>
        new(_samples, _loss.item<double>(), _correct.item<long>(), ComponentSums(), new Dictionary<string, double>(Scalars), Seconds);

    private Dictionary<string, double> ComponentSums()
    {
        if (_componentSums is null)
        {
            return [];
        }

        using var host = _componentSums.cpu();
        var values = host.data<double>().ToArray();
        return _componentNames.Select((name, i) => (name, values[i])).ToDictionary(p => p.name, p => p.Item2);
    }

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
        if (partial.ComponentSums.Count > 0)
        {
            _componentNames = [.. partial.ComponentSums.Keys];
            _componentSums?.Dispose();
            using var values = tensor(partial.ComponentSums.Values.ToArray(), ScalarType.Float64);
            _componentSums = values.to(_device).DetachFromDisposeScope();
        }

        Scalars = partial.Scalars;
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
        _componentSums?.fill_(0);
        Scalars = new Dictionary<string, double>();
        Seconds = 0;
    }

    public void Dispose()
    {
        _loss.Dispose();
        _correct.Dispose();
        _firstBad.Dispose();
        _componentSums?.Dispose();
    }
}
