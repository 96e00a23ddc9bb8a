using static TorchSharp.torch;

namespace DTSKD.Core.Models;

/// <summary>
/// A TorchSharp module that is an <see cref="IMultiBranchModel"/>: derive from it, build your layers, and return a
/// <see cref="MultiBranchOutput"/> from <c>forward</c>. Every built-in multi-branch network derives from it.
/// </summary>
public abstract class MultiBranchModule : nn.Module<Tensor, MultiBranchOutput>, IMultiBranchModel
{
    /// <summary>Creates the module.</summary>
    /// <param name="name">The module's name (TorchSharp's module name).</param>
    protected MultiBranchModule(string name)
        : base(name)
    {
    }

    /// <inheritdoc />
    public abstract int ClassCount { get; }

    /// <inheritdoc />
    public abstract int BranchCount { get; }
}
