using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core;

/// <summary>
/// A classifier with a backbone head and K branch heads, trained together by self-distillation. The trainer, the
/// evaluator and the objectives take this contract.
/// </summary>
/// <remarks>
/// <para>
/// It declares the members of a TorchSharp module that the engine uses, with TorchSharp's own signatures, so any
/// <c>nn.Module&lt;Tensor, MultiBranchOutput&gt;</c> implements it by adding <see cref="ClassCount"/> and
/// <see cref="BranchCount"/>; <see cref="Models.MultiBranchModule"/> is such a base class. The implementation must be
/// a TorchSharp module (the trainer moves it to the training device).
/// </para>
/// <para>Only the backbone head is needed at test time.</para>
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1716", Justification = "Mirrors TorchSharp's Module members (call), so a module implements it for free.")]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1707", Justification = "Mirrors TorchSharp's Module members (named_parameters, state_dict), so a module implements it for free.")]
public interface IMultiBranchModel : IDisposable
{
    /// <summary>The number of classes C every head predicts.</summary>
    int ClassCount { get; }

    /// <summary>The number of branch heads K (the backbone head is not counted).</summary>
    int BranchCount { get; }

    /// <summary>Whether the module is in training mode (TorchSharp's <c>Module.training</c>).</summary>
    bool training { get; }

    /// <summary>Runs the model on a batch of images and returns the logits of all K + 1 heads.</summary>
    /// <param name="input">Images, [batch, channels, height, width].</param>
    /// <returns>The heads' logits; the caller owns and disposes it.</returns>
    MultiBranchOutput call(Tensor input);

    /// <summary>Sets training (true) or evaluation (false) mode on the module and its children.</summary>
    /// <param name="train">True for training mode.</param>
    void train(bool train = true);

    /// <summary>Sets evaluation mode.</summary>
    void eval();

    /// <summary>The trainable parameters.</summary>
    /// <param name="recurse">Include the children's parameters.</param>
    IEnumerable<Parameter> parameters(bool recurse = true);

    /// <summary>The trainable parameters with their names.</summary>
    /// <param name="recurse">Include the children's parameters.</param>
    IEnumerable<(string name, Parameter parameter)> named_parameters(bool recurse = true);

    /// <summary>Every parameter and persistent buffer by name, as PyTorch's <c>state_dict</c>.</summary>
    /// <param name="destination">A dictionary to add to, or null for a new one.</param>
    /// <param name="prefix">A prefix for the names, or null.</param>
    Dictionary<string, Tensor> state_dict(Dictionary<string, Tensor>? destination = null, string? prefix = null);

    /// <summary>The module and all its descendants.</summary>
    IEnumerable<nn.Module> modules();
}
