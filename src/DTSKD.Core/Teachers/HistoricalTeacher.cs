using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// The historical teacher: a per-sample, per-head memory of the previous epoch's predictions that turns into soft
/// targets <c>q_h = alpha · onehot(y) + (1 − alpha) · H_h[idx]</c>, and the soft-target terms
/// <c>SKL_1(z_h, q_h)</c> (<see cref="Losses.SoftTargetKlDivergence"/>) of every head.
/// </summary>
/// <remarks>
/// <para>
/// It holds a row of C probabilities for every sample and head (<see cref="HistoryStorage"/> says how: dense or top-k,
/// in which format, on the device or in host memory). A sample's rows are its one-hot label the first time the sample
/// is seen; <see cref="Terms"/> overwrites them with each head's detached softmax, so what
/// epoch e writes is what epoch e + 1 reads. (The public PyTorch release never writes its memory; this one does.)
/// </para>
/// <para>The teacher owns its tensors and frees them on <see cref="Dispose"/>.</para>
/// </remarks>
public sealed class HistoricalTeacher : IDisposable
{
    private const string StateMagic = "DTSKD.HistoricalTeacher/2";

    private readonly HistoryStore _store;
    private readonly Tensor _seen;
    private readonly Device _device;
    private bool _disposed;

    /// <summary>Creates an empty memory (no sample seen yet).</summary>
    /// <param name="sampleCount">N, the number of training samples; indices run 0..N-1.</param>
    /// <param name="classCount">C, the number of classes.</param>
    /// <param name="headCount">K + 1, the number of heads (backbone plus branches).</param>
    /// <param name="device">The training device, where targets are returned (default: CPU).</param>
    /// <param name="storage">How the memory is stored (default: <see cref="HistoryStorage.Dense"/>, float32 on <paramref name="device"/>).</param>
    public HistoricalTeacher(int sampleCount, int classCount, int headCount, Device? device = null, HistoryStorage? storage = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(sampleCount, 0);
        ArgumentOutOfRangeException.ThrowIfLessThan(classCount, 2);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(headCount, 0);
        storage ??= HistoryStorage.Dense;
        storage.Validate(classCount);
        TorchSharpRuntime.EnsureLoaded();

        SampleCount = sampleCount;
        ClassCount = classCount;
        HeadCount = headCount;
        Storage = storage;
        _device = device ?? CPU;
        var home = storage.OnHost ? CPU : _device;
        var pin = storage.OnHost && _device.type == DeviceType.CUDA;
        _store = storage.TopK is { } k
            ? new TopKHistoryStore(headCount, sampleCount, classCount, k, storage.ValueType, home, pin)
            : new DenseHistoryStore(headCount, sampleCount, classCount, storage.ValueType, home, pin);
        _seen = zeros([sampleCount], ScalarType.Bool, home).DetachFromDisposeScope();
    }

    /// <summary>N, the number of samples the memory has rows for.</summary>
    public int SampleCount { get; }

    /// <summary>C, the number of classes.</summary>
    public int ClassCount { get; }

    /// <summary>K + 1, the number of heads.</summary>
    public int HeadCount { get; }

    /// <summary>How the memory is stored.</summary>
    public HistoryStorage Storage { get; }

    /// <summary>The training device: where targets and terms are computed and returned.</summary>
    public Device Device => _device;

    /// <summary>The memory's size in bytes (values and class indices; the N-byte seen mask aside).</summary>
    public long MemoryBytes => _store.Bytes;

    /// <summary>
    /// The soft targets of every head for a batch: <c>alpha · onehot(labels) + (1 − alpha) · history[h, indices]</c>,
    /// as a float32 tensor [heads, batch, C]. Samples seen for the first time get their one-hot row first (so their
    /// target is the one-hot label), and that row is stored.
    /// </summary>
    /// <param name="indices">Dataset indices of the batch's samples, [batch], each in 0..N-1, no repeats.</param>
    /// <param name="labels">Class labels, [batch], each in 0..C-1.</param>
    /// <param name="alpha">The weight of the one-hot label, in [0, 1] (see <see cref="CoefficientSchedule"/>).</param>
    /// <returns>A new tensor on <see cref="Device"/> the caller owns; no gradient flows through it.</returns>
    internal Tensor SoftTargets(Tensor indices, Tensor labels, double alpha)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        TensorChecks.IndexVector(indices, nameof(indices), indices.dim() == 1 ? indices.shape[0] : -1, SampleCount, "sample indices");
        TensorChecks.IndexVector(labels, nameof(labels), indices.shape[0], ClassCount, "class labels");
        TensorChecks.Alpha(alpha, nameof(alpha));

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var idx = indices.to(ScalarType.Int64, _store.Device);
        var (targets, oneHot, firstSight) = Targets(idx, labels, alpha);

        // Rows seen for the first time are stored as their one-hot label; the others stay exactly as they were.
        _store.Write(idx, oneHot.expand(HeadCount, -1, -1).to(_store.Device), firstSight.view(-1).to(_store.Device));
        _seen.index_fill_(0, idx, true);
        return targets.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The soft-target term of every head for a batch, <c>SKL_1(z_h, q_h)</c>, with targets <c>alpha · onehot(y) + (1 − alpha) · H_h[idx]</c> (one-hot rows for samples seen the first time);
    /// then stores each head's detached softmax for the batch's samples (what the next epoch reads).
    /// </summary>
    /// <param name="output">The model's output for the batch: <see cref="HeadCount"/> heads of C classes.</param>
    /// <param name="labels">Class labels, [batch], each in 0..C-1.</param>
    /// <param name="indices">Dataset indices of the batch's samples, [batch], each in 0..N-1, no repeats.</param>
    /// <param name="alpha">The weight of the one-hot label, in [0, 1].</param>
    /// <returns>A new tensor [heads] (float32, or float64 for float64 logits) that gradient flows through; the caller owns it.</returns>
    public Tensor Terms(MultiBranchOutput output, Tensor labels, Tensor indices, double alpha)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckOutput(output);
        TensorChecks.IndexVector(indices, nameof(indices), output.Backbone.shape[0], SampleCount, "sample indices");
        TensorChecks.IndexVector(labels, nameof(labels), output.Backbone.shape[0], ClassCount, "class labels");
        TensorChecks.Alpha(alpha, nameof(alpha));
        using var scope = NewDisposeScope();
        var heads = stack(output.Heads, 0);
        return TermsUnchecked(heads.to(Losses.ComputeType(heads)), labels, indices, alpha).MoveToOuterDisposeScope();
    }

    /// <summary><see cref="Terms"/> for stacked logits [heads, batch, C] in the loss's compute type, with checked arguments.</summary>
    internal Tensor TermsUnchecked(Tensor heads, Tensor labels, Tensor indices, double alpha)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var scope = NewDisposeScope();
        Tensor q;
        using (no_grad())
        {
            q = Targets(indices.to(ScalarType.Int64, _store.Device), labels, alpha).Targets;
        }

        var terms = Losses.SoftTargetKlDivergenceUnchecked(heads, q, 1.0);
        Write(indices, heads);
        return terms.MoveToOuterDisposeScope();
    }

    /// <summary>Stores the detached softmax of every head for the batch's samples (what the next epoch reads).</summary>
    /// <param name="indices">Dataset indices of the batch's samples, [batch], each in 0..N-1, no repeats.</param>
    /// <param name="output">The model's output for the batch; must have <see cref="HeadCount"/> heads of C classes.</param>
    internal void Update(Tensor indices, MultiBranchOutput output)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckOutput(output);
        TensorChecks.IndexVector(indices, nameof(indices), output.Backbone.shape[0], SampleCount, "sample indices");
        using var scope = NewDisposeScope();
        var heads = stack(output.Heads, 0);
        Write(indices, heads.to(Losses.ComputeType(heads)));
    }

    /// <summary>A copy of one head's memory rows, float32 [batch, C] on <see cref="Device"/>, for inspection and tests.</summary>
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
        using var noGrad = no_grad();
        return _store.Read(indices.to(ScalarType.Int64, _store.Device))[head].to(_device).MoveToOuterDisposeScope();
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
        writer.Write(Describe());
        foreach (var table in _store.Tables)
        {
            TensorIO.Write(writer, table);
        }

        TensorIO.Write(writer, _seen);
    }

    /// <summary>Replaces the memory with one written by <see cref="Save"/> from a teacher of the same shape and storage.</summary>
    /// <param name="stream">A readable stream positioned at the saved state; it is left open.</param>
    /// <exception cref="InvalidDataException">The stream does not hold a matching teacher state; the memory is unchanged.</exception>
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

            var saved = reader.ReadString();
            if (saved != Describe())
            {
                throw new InvalidDataException($"The saved historical teacher is {saved}; this one is {Describe()}.");
            }

            // Read into temporaries first so a truncated stream leaves the live memory untouched.
            using var scope = NewDisposeScope();
            var tables = _store.Tables.Select(t => zeros_like(t, device: CPU)).ToList();
            var seen = zeros_like(_seen, device: CPU);
            foreach (var table in tables)
            {
                TensorIO.Read(reader, table, "history table");
            }

            TensorIO.Read(reader, seen, "history seen-mask");
            using var noGrad = no_grad();
            foreach (var (live, loaded) in _store.Tables.Zip(tables))
            {
                live.copy_(loaded);
            }

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
            _store.Dispose();
            _seen.Dispose();
        }
    }

    private string Describe() =>
        FormattableString.Invariant($"{HeadCount} heads x {SampleCount} samples x {ClassCount} classes, ") +
        (Storage.TopK is { } k ? FormattableString.Invariant($"top-{k} ") : "dense ") + Storage.ValueType;

    private void CheckOutput(MultiBranchOutput output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (output.Heads.Count != HeadCount || output.Backbone.shape[1] != ClassCount)
        {
            throw new ArgumentException(
                $"output must have {HeadCount} heads of {ClassCount} classes; got {output.Heads.Count} heads of shape {TensorChecks.Shape(output.Backbone)}.",
                nameof(output));
        }
    }

    /// <summary>The targets [heads, batch, C] on the training device (one-hot rows on first sight), the one-hot labels [1, batch, C] and the first-sight mask [1, batch, 1].</summary>
    private (Tensor Targets, Tensor OneHot, Tensor FirstSight) Targets(Tensor idx, Tensor labels, double alpha)
    {
        var oneHot = nn.functional.one_hot(labels.to(ScalarType.Int64, _device), ClassCount).to(ScalarType.Float32).unsqueeze(0);
        var firstSight = _seen.index_select(0, idx).logical_not().to(_device).view(1, -1, 1);
        var rows = where(firstSight, oneHot, _store.Read(idx).to(_device));

        // Mixed in float32, as the release does with its float32 tables.
        return (oneHot.mul(alpha).add(rows.mul(1 - alpha)), oneHot, firstSight);
    }

    private void Write(Tensor indices, Tensor heads)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var idx = indices.to(ScalarType.Int64, _store.Device);
        _store.Write(idx, heads.detach().softmax(-1).to(_store.Device));
        _seen.index_fill_(0, idx, true);
    }
}
