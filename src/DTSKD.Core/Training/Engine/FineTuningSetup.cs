using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// What <see cref="FineTuning"/> does to a model while it trains: frozen parameters stop asking for gradients and stay out
/// of the optimizer, the pretrained ones form their own parameter group at a fraction of the rate, and frozen batch norms
/// run in eval mode whenever the model trains. Gives the model back as it found it.
/// </summary>
internal sealed class FineTuningSetup
{
    private readonly FineTuning? _tuning;
    private readonly HashSet<string> _frozen;
    private readonly HashSet<string> _pretrained;
    private readonly List<string> _switchedOff = [];
    private readonly List<BatchNorm2d> _fixedNorms = [];

    /// <summary>Checks the names against the model and finds the batch norms that keep their statistics.</summary>
    /// <exception cref="ArgumentException">A frozen or pretrained name is not the model's.</exception>
    public FineTuningSetup(IMultiBranchModel model, FineTuning? tuning)
    {
        _tuning = tuning;
        _frozen = [.. tuning?.FrozenParameters ?? []];
        _pretrained = [.. tuning?.PretrainedParameters ?? []];
        if (tuning is null)
        {
            return;
        }

        var parameters = model.named_parameters().Select(p => p.name).ToHashSet();
        var known = parameters.Concat(((nn.Module)model).named_buffers().Select(b => b.name)).ToHashSet();
        if (_frozen.FirstOrDefault(n => !parameters.Contains(n)) is { } strange)
        {
            throw new ArgumentException($"FineTuning.FrozenParameters names '{strange}', which is not a parameter of the model.", nameof(tuning));
        }

        if (_pretrained.FirstOrDefault(n => !known.Contains(n)) is { } unknown)
        {
            throw new ArgumentException($"FineTuning.PretrainedParameters names '{unknown}', which is not a parameter or buffer of the model.", nameof(tuning));
        }

        foreach (var (name, module) in ((nn.Module)model).named_modules())
        {
            if (module is BatchNorm2d norm && (_frozen.Contains(name + ".weight") || (tuning.FreezeBatchNorm && _pretrained.Contains(name + ".weight"))))
            {
                _fixedNorms.Add(norm);
            }
        }
    }

    /// <summary>Turns gradients off for the frozen parameters (call after the model took its training format).</summary>
    public void Freeze(IMultiBranchModel model)
    {
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (_frozen.Contains(name) && parameter.requires_grad)
            {
                parameter.requires_grad = false;
                _switchedOff.Add(name);
            }
        }
    }

    /// <summary>
    /// The parameters the optimizer steps, and its groups: <paramref name="stepped"/> is in the model's parameter order
    /// (what the precision policy returns), the frozen ones are left out, the new ones first at the full rate.
    /// </summary>
    public (IReadOnlyList<Parameter> Trained, IReadOnlyList<SGD.ParamGroup>? Groups) Split(IMultiBranchModel model, IReadOnlyList<Parameter> stepped, TrainerOptions options)
    {
        var names = model.named_parameters().Select(p => p.name).ToList();
        var kept = names.Zip(stepped).Where(p => !_frozen.Contains(p.First)).ToList();
        var trained = kept.Select(p => p.Second).ToList();
        if (_tuning is null || _tuning.BackboneLearningRateFactor == 1.0)
        {
            return (trained, null);
        }

        SGD.ParamGroup Group(IEnumerable<Parameter> members, double rate) =>
            new([.. members], rate, options.Momentum, 0, options.WeightDecay, options.Nesterov);
        var fresh = kept.Where(p => !_pretrained.Contains(p.First)).Select(p => p.Second).ToList();
        var pretrained = kept.Where(p => _pretrained.Contains(p.First)).Select(p => p.Second).ToList();
        var groups = new List<SGD.ParamGroup>();
        if (fresh.Count > 0)
        {
            groups.Add(Group(fresh, options.LearningRate));
        }

        if (pretrained.Count > 0)
        {
            groups.Add(Group(pretrained, options.LearningRate * _tuning.BackboneLearningRateFactor));
        }

        return ([.. fresh, .. pretrained], groups);
    }

    /// <summary>Training mode, with the fixed batch norms in eval mode so their running statistics stay.</summary>
    public void TrainMode(IMultiBranchModel model)
    {
        model.train();
        foreach (var norm in _fixedNorms)
        {
            norm.eval();
        }
    }

    /// <summary>Gradients back on for what <see cref="Freeze"/> turned off (after the model is back in float32).</summary>
    public void Release(IMultiBranchModel model)
    {
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var name in _switchedOff)
        {
            parameters[name].requires_grad = true;
        }

        _switchedOff.Clear();
    }
}
