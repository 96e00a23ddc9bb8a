using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// One evaluation of an <see cref="IMultiBranchObjective"/>: the total to back-propagate and every named
/// component (unweighted), for logging. Disposing it disposes every tensor it holds.
/// </summary>
/// <remarks>
/// <see cref="DualTeacherLoss"/> names its components <c>history/backbone</c>, <c>history/branch1</c>.. (soft-target
/// terms, historical teacher on) or <c>ce/backbone</c> (off), and <c>structural/branch1</c>.. (KD terms);
/// <see cref="CrossEntropyObjective"/> names them <c>ce/backbone</c>, <c>ce/branch1</c>...
/// </remarks>
public sealed class MultiBranchLossResult : IDisposable
{
    private readonly Dictionary<string, Tensor> _components;

    internal MultiBranchLossResult(Tensor total, Dictionary<string, Tensor> components, double? alpha)
    {
        Total = total;
        _components = components;
        Alpha = alpha;
    }

    /// <summary>The weighted total, a 0-dim float32 tensor; call <c>backward()</c> on it.</summary>
    public Tensor Total { get; }

    /// <summary>The unweighted terms by name, in a stable order (backbone, branches, then KD terms).</summary>
    public IReadOnlyDictionary<string, Tensor> Components => _components;

    /// <summary>alpha_t of the historical teacher's soft targets, or null when the objective has no historical teacher.</summary>
    public double? Alpha { get; }

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
