using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>Every probability of every row, in the storage format.</summary>
internal sealed class DenseHistoryStore(int heads, int samples, int classes, ScalarType type, Device device, bool pin) : HistoryStore
{
    private readonly Tensor _memory = Allocate([heads, samples, classes], type, device, pin);

    public override Device Device => _memory.device;

    public override IReadOnlyList<Tensor> Tables => [_memory];

    public override Tensor Read(Tensor idx) => _memory.index_select(1, idx).to(ScalarType.Float32);

    public override void Write(Tensor idx, Tensor probabilities, Tensor? only = null) =>
        _memory.index_copy_(1, idx, Blend(probabilities.to(_memory.dtype), _memory, idx, only));
}
