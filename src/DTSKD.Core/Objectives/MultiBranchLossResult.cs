using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// One evaluation of an <see cref="IMultiBranchObjective"/>: the total to back-propagate, every named term
/// (unweighted), and any scalars the objective wants logged. Disposing it disposes every tensor it holds.
/// </summary>
/// <remarks>
/// <see cref="DualTeacherLoss"/> names its terms <c>history/backbone</c>, <c>history/branch1</c>.. (soft-target terms,
/// historical teacher on) or <c>ce/backbone</c> (off), and <c>structural/branch1</c>.. (KD terms), and reports the
/// scalar <c>alpha</c> (the one-hot label's weight) and, during a KD warm-up, <c>kd_weight</c>;
/// <see cref="CrossEntropyObjective"/> names its terms <c>ce/backbone</c>, <c>ce/branch1</c>... The trainer averages
/// every term over an epoch and keeps each scalar's last value, whatever their names.
/// </remarks>
public sealed class MultiBranchLossResult : IDisposable
{
    private static readonly IReadOnlyDictionary<string, double> NoScalars = new Dictionary<string, double>();

    /// <summary>Wraps an objective's tensors; the result takes ownership of them.</summary>
    /// <param name="total">The weighted total, a 0-dim tensor.</param>
    /// <param name="components">The unweighted terms by name (0-dim tensors), in a stable order.</param>
    /// <param name="scalars">Values to log by name (for example a schedule's current value); null for none.</param>
    public MultiBranchLossResult(Tensor total, IReadOnlyDictionary<string, Tensor> components, IReadOnlyDictionary<string, double>? scalars = null)
    {
        ArgumentNullException.ThrowIfNull(total);
        ArgumentNullException.ThrowIfNull(components);
        if (total.dim() != 0)
        {
            throw new ArgumentException($"total must be a 0-dim tensor; got shape {TensorChecks.Shape(total)}.", nameof(total));
        }

        Total = total;
        Components = components;
        Scalars = scalars ?? NoScalars;
    }

    /// <summary>The weighted total, a 0-dim tensor; call <c>backward()</c> on it.</summary>
    public Tensor Total { get; }

    /// <summary>The unweighted terms by name, in a stable order (backbone, branches, then KD terms).</summary>
    public IReadOnlyDictionary<string, Tensor> Components { get; }

    /// <summary>Values the objective reports for logging, by name (for <see cref="DualTeacherLoss"/>: <c>alpha</c>).</summary>
    public IReadOnlyDictionary<string, double> Scalars { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        Total.Dispose();
        foreach (var component in Components.Values)
        {
            component.Dispose();
        }
    }
}
