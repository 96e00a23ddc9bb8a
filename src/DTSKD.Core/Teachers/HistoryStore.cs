using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>The tables behind the memory: read rows as float32 [heads, batch, C], write probabilities.</summary>
internal abstract class HistoryStore : IDisposable
{
    public abstract Device Device { get; }

    public abstract IReadOnlyList<Tensor> Tables { get; }

    public long Bytes => Tables.Sum(t => t.NumberOfElements * t.ElementSize);

    public abstract Tensor Read(Tensor idx);

    /// <summary>Stores probabilities [heads, batch, C] as the rows of <paramref name="idx"/>; with <paramref name="only"/> (bool [batch]), only those rows change.</summary>
    public abstract void Write(Tensor idx, Tensor probabilities, Tensor? only = null);

    public void Dispose()
    {
        foreach (var table in Tables)
        {
            table.Dispose();
        }
    }

    /// <summary>The new rows where <paramref name="only"/> is true and the stored ones elsewhere (all new rows without a mask).</summary>
    protected static Tensor Blend(Tensor rows, Tensor table, Tensor idx, Tensor? only) =>
        only is null ? rows : where(only.view(1, -1, 1), rows, table.index_select(1, idx));

    // Owned for the teacher's whole life, so kept out of any dispose scope the caller is in.
    protected static Tensor Allocate(long[] shape, ScalarType type, Device device, bool pin)
    {
        var table = zeros(shape, type, device);
        if (pin)
        {
            var pinned = table.pin_memory();
            table.Dispose();
            table = pinned;
        }

        return table.DetachFromDisposeScope();
    }
}
