using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// The historical teacher: a per-sample, per-head memory of the previous epoch's predictions that turns
/// into soft targets <c>alpha · onehot(y) + (1 − alpha) · history</c>.
/// </summary>
/// <remarks>
/// <para>
/// It holds one table of N × C probabilities for each of the K + 1 heads (one tensor of shape
/// [heads, N, C]). A sample's rows are set to its one-hot label the first time the sample is seen, and
/// <see cref="Update"/> overwrites them with the detached softmax of each head, so what epoch e writes is
/// what epoch e + 1 reads. (The public PyTorch release never writes its memory; this one does.)
/// </para>
/// <para>The teacher owns its tensors and frees them on <see cref="Dispose"/>.</para>
/// </remarks>
public sealed class HistoricalTeacher : IDisposable
{
    private const string StateMagic = "DTSKD.HistoricalTeacher/1";

    private readonly Tensor _memory;
    private readonly Tensor _seen;
    private bool _disposed;

    /// <summary>Creates an empty memory (no sample seen yet).</summary>
    /// <param name="sampleCount">N, the number of training samples; indices run 0..N-1.</param>
    /// <param name="classCount">C, the number of classes.</param>
    /// <param name="headCount">K + 1, the number of heads (backbone plus branches).</param>
    /// <param name="device">Where the memory lives (default: CPU). Put it on the training device.</param>
    /// <param name="dtype">Float32 (default), Float16 or BFloat16; half types halve the memory.</param>
    public HistoricalTeacher(int sampleCount, int classCount, int headCount, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(sampleCount, 0);
        ArgumentOutOfRangeException.ThrowIfLessThan(classCount, 2);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(headCount, 0);
        if (dtype is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
        {
            throw new ArgumentException($"dtype must be Float32, Float16 or BFloat16; got {dtype}.", nameof(dtype));
        }

        TorchSharpRuntime.EnsureLoaded();
        SampleCount = sampleCount;
        ClassCount = classCount;
        HeadCount = headCount;
        device ??= CPU;
        // Owned for the teacher's whole life, so kept out of any dispose scope the caller is in.
        _memory = zeros([headCount, sampleCount, classCount], dtype, device).DetachFromDisposeScope();
        _seen = zeros([sampleCount], ScalarType.Bool, device).DetachFromDisposeScope();
    }

    /// <summary>N, the number of samples the memory has rows for.</summary>
    public int SampleCount { get; }

    /// <summary>C, the number of classes.</summary>
    public int ClassCount { get; }

    /// <summary>K + 1, the number of heads.</summary>
    public int HeadCount { get; }

    /// <summary>The device the memory lives on.</summary>
    public Device Device => _memory.device;

    /// <summary>The element type of the memory.</summary>
    public ScalarType DType => _memory.dtype;

    /// <summary>The memory's size in bytes (excluding the N-byte seen mask).</summary>
    public long MemoryBytes => _memory.NumberOfElements * _memory.ElementSize;

    /// <summary>
    /// The soft targets of every head for a batch: <c>alpha · onehot(labels) + (1 − alpha) · history[h, indices]</c>,
    /// as a float32 tensor [heads, batch, C]. Samples seen for the first time get their one-hot row first
    /// (so their target is the one-hot label), and that row is stored.
    /// </summary>
    /// <param name="indices">Dataset indices of the batch's samples, [batch], each in 0..N-1, no repeats.</param>
    /// <param name="labels">Class labels, [batch], each in 0..C-1.</param>
    /// <param name="alpha">The weight of the one-hot label, in [0, 1] (see <see cref="CoefficientSchedule"/>).</param>
    /// <returns>A new tensor the caller owns; no gradient flows through it.</returns>
    public Tensor SoftTargets(Tensor indices, Tensor labels, double alpha)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        TensorChecks.IndexVector(indices, nameof(indices), indices.dim() == 1 ? indices.shape[0] : -1, SampleCount, "sample indices");
        TensorChecks.IndexVector(labels, nameof(labels), indices.shape[0], ClassCount, "class labels");
        if (!(alpha >= 0 && alpha <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "alpha must be in [0, 1].");
        }

        return SoftTargetsUnchecked(indices, labels, alpha);
    }

    /// <summary><see cref="SoftTargets"/> for arguments the caller has already checked (no device round trip).</summary>
    internal Tensor SoftTargetsUnchecked(Tensor indices, Tensor labels, double alpha)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var idx = indices.to(ScalarType.Int64, _memory.device);
        var oneHot = nn.functional.one_hot(labels.to(ScalarType.Int64, _memory.device), ClassCount).to(ScalarType.Float32);

        var rows = _memory.index_select(1, idx).to(ScalarType.Float32);
        var firstSight = _seen.index_select(0, idx).logical_not().view(1, -1, 1);
        rows = where(firstSight, oneHot.unsqueeze(0), rows);
        _memory.index_copy_(1, idx, rows.to(_memory.dtype));
        _seen.index_fill_(0, idx, true);

        return oneHot.unsqueeze(0).mul(alpha).add(rows.mul(1 - alpha)).MoveToOuterDisposeScope();
    }

    /// <summary>Stores the detached softmax of every head for the batch's samples (what the next epoch reads).</summary>
    /// <param name="indices">Dataset indices of the batch's samples, [batch], each in 0..N-1, no repeats.</param>
    /// <param name="output">The model's output for the batch; must have <see cref="HeadCount"/> heads of C classes.</param>
    public void Update(Tensor indices, MultiBranchOutput output)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(output);
        if (output.Heads.Count != HeadCount || output.Backbone.shape[1] != ClassCount)
        {
            throw new ArgumentException(
                $"output must have {HeadCount} heads of {ClassCount} classes; got {output.Heads.Count} heads of shape {TensorChecks.Shape(output.Backbone)}.",
                nameof(output));
        }

        TensorChecks.IndexVector(indices, nameof(indices), output.Backbone.shape[0], SampleCount, "sample indices");
        using var heads = stack(output.Heads, 0);
        UpdateUnchecked(indices, heads);
    }

    /// <summary>Stores the softmax of stacked head logits [heads, batch, C] for checked indices.</summary>
    internal void UpdateUnchecked(Tensor indices, Tensor stackedLogits)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var idx = indices.to(ScalarType.Int64, _memory.device);
        var probabilities = stackedLogits.detach().to(ScalarType.Float32).softmax(2);
        _memory.index_copy_(1, idx, probabilities.to(_memory.dtype, _memory.device));
        _seen.index_fill_(0, idx, true);
    }

    /// <summary>A copy of one head's memory rows, float32 [batch, C], for inspection and tests.</summary>
    /// <param name="head">0 for the backbone, 1..K for the branches.</param>
    /// <param name="indices">Dataset indices, [batch].</param>
    /// <returns>A new tensor the caller owns.</returns>
    public Tensor Read(int head, Tensor indices)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(head);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(head, HeadCount);
        TensorChecks.IndexVector(indices, nameof(indices), indices.dim() == 1 ? indices.shape[0] : -1, SampleCount, "sample indices");
        using var scope = NewDisposeScope();
        return _memory[head].index_select(0, indices.to(ScalarType.Int64, _memory.device))
            .to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>The number of samples seen so far.</summary>
    public long SeenCount()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var scope = NewDisposeScope();
        return _seen.sum().item<long>();
    }

    /// <summary>Writes the memory and the seen mask to a stream (for checkpoints).</summary>
    /// <param name="stream">A writable stream; it is left open.</param>
    public void Save(Stream stream)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(stream);
        using var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        writer.Write(StateMagic);
        writer.Write(HeadCount);
        writer.Write(SampleCount);
        writer.Write(ClassCount);
        writer.Write((int)_memory.dtype);
        _memory.Save(writer);
        _seen.Save(writer);
    }

    /// <summary>Replaces the memory with one written by <see cref="Save"/> from a teacher of the same shape and dtype.</summary>
    /// <param name="stream">A readable stream positioned at the saved state; it is left open.</param>
    /// <exception cref="InvalidDataException">The stream does not hold a matching teacher state.</exception>
    public void Load(Stream stream)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(stream);
        using var reader = new BinaryReader(stream, System.Text.Encoding.UTF8, leaveOpen: true);
        try
        {
            var magic = reader.ReadString();
            if (magic != StateMagic)
            {
                throw new InvalidDataException($"The stream does not hold a historical-teacher state (expected '{StateMagic}', found '{magic}').");
            }

            var (heads, samples, classes, dtype) = (reader.ReadInt32(), reader.ReadInt32(), reader.ReadInt32(), (ScalarType)reader.ReadInt32());
            if (heads != HeadCount || samples != SampleCount || classes != ClassCount || dtype != _memory.dtype)
            {
                throw new InvalidDataException(
                    $"The saved historical teacher has {heads} heads x {samples} samples x {classes} classes in {dtype}; " +
                    $"this one has {HeadCount} x {SampleCount} x {ClassCount} in {_memory.dtype}.");
            }

            // Read into temporaries first so a truncated stream leaves the live memory untouched.
            using var memory = zeros_like(_memory, device: CPU);
            using var seen = zeros_like(_seen, device: CPU);
            memory.Load(reader);
            seen.Load(reader);
            using var noGrad = no_grad();
            _memory.copy_(memory);
            _seen.copy_(seen);
        }
        catch (EndOfStreamException ex)
        {
            throw new InvalidDataException("The historical-teacher state is truncated.", ex);
        }
        catch (ArgumentException ex)
        {
            throw new InvalidDataException("The historical-teacher state does not match this teacher: " + ex.Message, ex);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _memory.Dispose();
            _seen.Dispose();
        }
    }
}
