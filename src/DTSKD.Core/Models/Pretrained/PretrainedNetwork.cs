namespace DTSKD.Core.Models;

/// <summary>
/// A multi-branch model built around a pretrained backbone (torchvision weights, an ONNX classifier): the model, what came
/// from the file and what was initialised afresh (the new classifier, the neck and the branches), the stages it can be
/// frozen by, and the input the backbone was trained on.
/// </summary>
public sealed record PretrainedNetwork
{
    /// <summary>Creates the record.</summary>
    /// <param name="model">The multi-branch model (owned by the caller: dispose it).</param>
    /// <param name="source">The file the backbone came from.</param>
    /// <param name="pretrained">The model's parameter and buffer names whose values came from the file.</param>
    /// <param name="initialised">The model's parameter and buffer names initialised afresh.</param>
    /// <param name="stages">The backbone's stages in order (stem first, where it has one), each with its parameter names.</param>
    /// <param name="mean">The per-channel mean the backbone expects of [0, 1]-scaled pixels.</param>
    /// <param name="std">The per-channel standard deviation the backbone expects.</param>
    /// <param name="notes">What was adapted on the way (gray images into an RGB network, a dropped classifier).</param>
    public PretrainedNetwork(
        MultiBranchModule model, string source, IReadOnlyList<string> pretrained, IReadOnlyList<string> initialised,
        IReadOnlyList<(string Name, IReadOnlyList<string> Parameters)> stages, IReadOnlyList<double> mean, IReadOnlyList<double> std, IReadOnlyList<string> notes)
    {
        ArgumentNullException.ThrowIfNull(model);
        (Model, Source, Pretrained, Initialised, Stages, Mean, Std, Notes) = (model, source, pretrained, initialised, stages, mean, std, notes);
    }

    /// <summary>The multi-branch model (owned by the caller: dispose it).</summary>
    public MultiBranchModule Model { get; }

    /// <summary>The file the backbone came from.</summary>
    public string Source { get; }

    /// <summary>The model's parameter and buffer names whose values came from the file.</summary>
    public IReadOnlyList<string> Pretrained { get; }

    /// <summary>The model's parameter and buffer names initialised afresh: the classifier, the neck and the branches.</summary>
    public IReadOnlyList<string> Initialised { get; }

    /// <summary>The backbone's stages in order (<c>stem</c> first where there is one, then <c>stage1</c>, ...), each with its parameter names.</summary>
    public IReadOnlyList<(string Name, IReadOnlyList<string> Parameters)> Stages { get; }

    /// <summary>The per-channel mean the backbone expects of [0, 1]-scaled pixels (ImageNet's for torchvision weights).</summary>
    public IReadOnlyList<double> Mean { get; }

    /// <summary>The per-channel standard deviation the backbone expects.</summary>
    public IReadOnlyList<double> Std { get; }

    /// <summary>The smallest image side the backbone takes (its total stride: 32 for a ResNet's ImageNet stem); 1 when it has no such bound.</summary>
    public int MinimumImageSize { get; init; } = 1;

    /// <summary>
    /// The one image side the backbone takes, where it takes no other (an ONNX file whose layers fix the size it was
    /// exported at, such as VGG's classifier on a 7x7 map); null when every side from <see cref="MinimumImageSize"/> works.
    /// </summary>
    public int? RequiredImageSize { get; init; }

    /// <summary>What was adapted on the way, one sentence each (gray images into an RGB network, a dropped classifier, ...).</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>The parameter names of the stages up to and including <paramref name="stage"/> (for <see cref="Training.FineTuning.FrozenParameters"/>).</summary>
    /// <param name="stage">A name of <see cref="Stages"/>, or <c>none</c>.</param>
    /// <exception cref="ArgumentException">No stage has that name; the message lists them.</exception>
    public IReadOnlyList<string> ParametersThrough(string stage)
    {
        ArgumentNullException.ThrowIfNull(stage);
        if (stage == "none")
        {
            return [];
        }

        var index = Stages.Select(s => s.Name).ToList().IndexOf(stage);
        return index < 0
            ? throw new ArgumentException($"'{stage}' is not a stage of this network; its stages are none, {string.Join(", ", Stages.Select(s => s.Name))}.", nameof(stage))
            : [.. Stages.Take(index + 1).SelectMany(s => s.Parameters)];
    }
}
