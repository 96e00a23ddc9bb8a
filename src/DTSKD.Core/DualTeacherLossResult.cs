using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// One evaluation of <see cref="DualTeacherLoss"/>: the total to back-propagate and every named component
/// (unweighted), for logging. Disposing it disposes every tensor it holds.
/// </summary>
/// <remarks>
/// Component names: <c>history/backbone</c>, <c>history/branch1</c>.. (soft-target terms, historical teacher on),
/// or <c>ce/backbone</c> (historical teacher off); <c>structural/branch1</c>.. (KD terms).
/// </remarks>
public sealed class DualTeacherLossResult : IDisposable
{
    private readonly Dictionary<string, Tensor> _components;

    internal DualTeacherLossResult(Tensor total, Dictionary<string, Tensor> components, double alpha)
    {
        Total = total;
        _components = components;
        Alpha = alpha;
    }

    /// <summary>The weighted total, a 0-dim float32 tensor; call <c>backward()</c> on it.</summary>
    public Tensor Total { get; }

    /// <summary>The unweighted terms by name, in a stable order (backbone, branches, then KD terms).</summary>
    public IReadOnlyDictionary<string, Tensor> Components => _components;

    /// <summary>alpha_t used for the soft targets (1 when the historical teacher is off).</summary>
    public double Alpha { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        Total.Dispose();
        foreach (var component in _components.Values)
        {
            component.Dispose();
        }
    }
}
