using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>The k largest probabilities of every row and their classes; the rest of the mass spread evenly.</summary>
internal sealed class TopKHistoryStore(int heads, int samples, int classes, int k, ScalarType type, Device device, bool pin) : HistoryStore
{
    private readonly Tensor _values = Allocate([heads, samples, k], type, device, pin);
    private readonly Tensor _classes = Allocate([heads, samples, k], HistoryStorage.ClassIndexType(classes), device, pin);

    public override Device Device => _values.device;

    public override IReadOnlyList<Tensor> Tables => [_values, _classes];

    public override Tensor Read(Tensor idx)
    {
        var values = _values.index_select(1, idx).to(ScalarType.Float32);
        var positions = _classes.index_select(1, idx).to(ScalarType.Int64);

        // The mass the k values leave is spread evenly over the other classes (HistoryStorage's remarks).
        var rest = classes - k;
        var rows = rest == 0
            ? zeros([heads, idx.shape[0], classes], ScalarType.Float32, _values.device)
            : values.sum(-1, keepdim: true).neg().add(1).clamp_min(0).div(rest).expand(heads, idx.shape[0], classes).contiguous();
        return rows.scatter_(2, positions, values);
    }

    public override void Write(Tensor idx, Tensor probabilities, Tensor? only = null)
    {
        var (values, positions) = probabilities.topk(k, dim: -1);
        _values.index_copy_(1, idx, Blend(values.to(_values.dtype), _values, idx, only));
        _classes.index_copy_(1, idx, Blend(positions.to(_classes.dtype), _classes, idx, only));
    }
}
