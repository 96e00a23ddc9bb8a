using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core.Models;

/// <summary>
/// The plain classifier a multi-branch model contains: its backbone and backbone head, without the neck and the branches
/// (which self-distillation trains only to throw away). Its state dict holds the backbone's names only, so it loads into
/// the matching plain network elsewhere (for <c>resnet18_dtskd</c>, the release's plain CIFAR ResNet-18).
/// </summary>
/// <remarks>
/// It shares the source model's layers (no copy is made): loading weights into it loads them into the source's
/// backbone, and disposing either one frees the shared layers (a second dispose is harmless). Dispose it when you are
/// done with both, or save it at once (<c>DTSKD.Core.Interop.PyTorchWeights.Save</c>).
/// </remarks>
public sealed class BackboneClassifier : nn.Module<Tensor, Tensor>
{
    private readonly IBackboneSource _source;

    private BackboneClassifier(IBackboneSource source, string name)
        : base(name)
    {
        _source = source;
        foreach (var (childName, child) in source.BackboneChildren())
        {
            register_module(childName, child);
        }
    }

    /// <summary>The plain classifier inside a model built by DTSKD.Core (<see cref="MultiBranchModels"/> or <see cref="MultiBranchNetwork"/>).</summary>
    /// <param name="model">The trained multi-branch model.</param>
    /// <exception cref="ArgumentException">The model is not one of DTSKD.Core's networks, whose backbone it knows.</exception>
    public static BackboneClassifier From(IMultiBranchModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model is not IBackboneSource source)
        {
            throw new ArgumentException(
                $"{model.GetType().Name} is not a DTSKD.Core network, so its backbone is unknown; export the layers of your own model yourself.", nameof(model));
        }

        return new BackboneClassifier(source, model.GetType().Name + "Backbone");
    }

    /// <summary>The backbone head's logits, [batch, classes].</summary>
    /// <param name="input">Images, [batch, channels, height, width].</param>
    public override Tensor forward(Tensor input) => _source.BackboneLogits(input);

    /// <summary>The pooled feature the head reads, [batch, features]: what a t-SNE map or a nearest-neighbour search of the trained network uses.</summary>
    /// <param name="input">Images, [batch, channels, height, width].</param>
    public Tensor Features(Tensor input) => _source.BackboneFeature(input);

    // The shared layers are registered in the constructor; the source is not a component.
    /// <inheritdoc />
    protected override void RegisterComponents()
    {
    }
}
