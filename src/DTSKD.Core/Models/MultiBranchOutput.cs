using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// The logits of every head of a multi-branch model for one batch: the backbone head first, then the
/// branch heads in order. Disposing it disposes every logit tensor it holds.
/// </summary>
public sealed class MultiBranchOutput : IDisposable
{
    private readonly Tensor[] _heads;

    /// <summary>Wraps the heads' logits; the output takes ownership of the tensors.</summary>
    /// <param name="backbone">Backbone logits, [batch, classes].</param>
    /// <param name="branches">Branch logits in order, each [batch, classes].</param>
    public MultiBranchOutput(Tensor backbone, IReadOnlyList<Tensor> branches)
    {
        TensorChecks.Logits(backbone, nameof(backbone));
        ArgumentNullException.ThrowIfNull(branches);
        for (var i = 0; i < branches.Count; i++)
        {
            TensorChecks.Logits(branches[i], $"{nameof(branches)}[{i}]");
            TensorChecks.SameShape(backbone, nameof(backbone), branches[i], $"{nameof(branches)}[{i}]");
        }

        _heads = [backbone, .. branches];
    }

    /// <summary>The backbone (deepest) head's logits, [batch, classes]; the one used at test time.</summary>
    public Tensor Backbone => _heads[0];

    /// <summary>The branch heads' logits, in order.</summary>
    public IReadOnlyList<Tensor> Branches => new ArraySegment<Tensor>(_heads, 1, _heads.Length - 1);

    /// <summary>Every head: index 0 is the backbone, 1..K the branches.</summary>
    public IReadOnlyList<Tensor> Heads => _heads;

    /// <summary>The number of branch heads K.</summary>
    public int BranchCount => _heads.Length - 1;

    /// <summary>Moves every logit tensor to the enclosing dispose scope (as TorchSharp's MoveToOuterDisposeScope does for one).</summary>
    /// <returns>This output.</returns>
    public MultiBranchOutput MoveToOuterDisposeScope()
    {
        foreach (var head in _heads)
        {
            head.MoveToOuterDisposeScope();
        }

        return this;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var head in _heads)
        {
            head.Dispose();
        }
    }
}
