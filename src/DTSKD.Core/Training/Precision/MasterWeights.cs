using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// Float32 master weights for a model whose weights train in another format or layout: convolution and linear weights in
/// a half format, and/or convolution weights channels-last. Whatever optimizer the run uses steps the masters, which are
/// plain contiguous float32 tensors (so its state, and the checkpoints that hold it, are the same in every precision and
/// layout); the model's working weights are the masters, rounded and laid out. The copies between the two are few kernels,
/// because every tensor involved lives in one flat buffer.
/// </summary>
/// <remarks>
/// <para>
/// The model's working parameters become views into one buffer in the working format (their gradients into a second),
/// and their float32 masters views into a float32 buffer that also holds the model's other parameters (BatchNorm, and in
/// float32 everything but convolution weights), which are their own masters. Gathering the gradients, unscaling them,
/// checking them for overflow and publishing the updated weights are then one kernel each for the contiguous working
/// tensors, plus one per channels-last convolution weight.
/// </para>
/// <para>
/// The object owns the buffers. <see cref="Release"/> gives every parameter storage of its own again, contiguous (the model
/// is then independent of this object, as before it was created).
/// </para>
/// </remarks>
internal sealed class MasterWeights : IDisposable
{
    private readonly (string Name, Parameter Live, Parameter Master)[] _entries;
    private readonly (Tensor Work, Tensor Master, Tensor WorkGrad, Tensor MasterGrad)[] _laidOut;
    private readonly Tensor _master;
    private readonly Tensor _masterGrad;
    private readonly Tensor? _work;
    private readonly Tensor? _workGrad;
    private readonly long _flatCount;
    private readonly long _workCount;
    private bool _released;

    /// <summary>Gathers the model's parameters (already in their training formats) into the buffers.</summary>
    /// <param name="parameters">Every parameter by name, on one device: float32, and at most one half format.</param>
    /// <param name="exact">The float32 values of the half parameters from before they were converted, by name: the masters start from them, not from their rounding.</param>
    /// <param name="channelsLast">Whether the model's 4-D (convolution) weights are laid out channels-last; in float32 they are then its only working parameters.</param>
    public MasterWeights(IReadOnlyList<(string Name, Parameter Parameter)> parameters, IReadOnlyDictionary<string, Tensor>? exact = null, bool channelsLast = false)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var halfTypes = parameters.Select(p => p.Parameter.dtype).Where(t => t != ScalarType.Float32).Distinct().ToList();
        if (parameters.Count == 0 || halfTypes.Count > 1 || halfTypes.Any(t => t is not (ScalarType.BFloat16 or ScalarType.Float16))
            || parameters.Select(p => p.Parameter.device.ToString()).Distinct().Count() != 1)
        {
            throw new ArgumentException("Master weights need parameters on one device, in float32 and at most one half format.", nameof(parameters));
        }

        var workType = halfTypes.Count == 1 ? halfTypes[0] : ScalarType.Float32;
        bool Working(Parameter p) => halfTypes.Count == 1 ? p.dtype != ScalarType.Float32 : channelsLast && p.dim() == 4;
        bool LaidOut(Parameter p) => channelsLast && p.dim() == 4 && Working(p);

        // Working parameters first, those the flat copies move before the channels-last ones, so each group is one slice.
        var ordered = parameters.Where(p => Working(p.Parameter) && !LaidOut(p.Parameter))
            .Concat(parameters.Where(p => LaidOut(p.Parameter)))
            .Concat(parameters.Where(p => !Working(p.Parameter))).ToList();
        var device = ordered[0].Parameter.device;
        _flatCount = ordered.Where(p => Working(p.Parameter) && !LaidOut(p.Parameter)).Sum(p => p.Parameter.numel());
        _workCount = ordered.Where(p => Working(p.Parameter)).Sum(p => p.Parameter.numel());
        var total = ordered.Sum(p => p.Parameter.numel());
        _master = empty([total], ScalarType.Float32, device).DetachFromDisposeScope();
        _masterGrad = zeros([total], ScalarType.Float32, device).DetachFromDisposeScope();
        if (_workCount > 0)
        {
            _work = empty([_workCount], workType, device).DetachFromDisposeScope();
            _workGrad = zeros([_workCount], workType, device).DetachFromDisposeScope();
        }

        var entries = new List<(string, Parameter, Parameter)>();
        var laidOut = new List<(Tensor, Tensor, Tensor, Tensor)>();
        using var noGrad = no_grad();
        long offset = 0;
        foreach (var (name, p) in ordered)
        {
            var n = p.numel();
            using var scope = NewDisposeScope();
            var masterSlot = _master.narrow(0, offset, n).view(p.shape);
            masterSlot.copy_(exact is not null && exact.TryGetValue(name, out var value) ? value : p);
            Parameter master;
            if (!Working(p))
            {
                p.set_(masterSlot);
                master = p;
            }
            else
            {
                var workSlot = Slot(_work!, offset, p.shape, LaidOut(p));
                var workGradSlot = Slot(_workGrad!, offset, p.shape, LaidOut(p));
                workSlot.copy_(p);
                p.set_(workSlot);
                p.grad = workGradSlot;
                master = new Parameter(masterSlot.DetachFromDisposeScope());
                if (LaidOut(p))
                {
                    laidOut.Add((p.detach().DetachFromDisposeScope(), master.detach().DetachFromDisposeScope(),
                        workGradSlot.DetachFromDisposeScope(), _masterGrad.narrow(0, offset, n).view(p.shape).DetachFromDisposeScope()));
                }
            }

            master.grad = _masterGrad.narrow(0, offset, n).view(p.shape);
            entries.Add((name, p, master));
            offset += n;
        }

        // The optimizer sees the parameters in the model's order.
        var order = parameters.Select((p, i) => (p.Name, i)).ToDictionary(x => x.Name, x => x.i);
        _entries = [.. entries.OrderBy(e => order[e.Item1])];
        _laidOut = [.. laidOut];
    }

    /// <summary>What the optimizer steps, in the model's parameter order: the masters of working parameters, the other parameters themselves.</summary>
    public IReadOnlyList<Parameter> Parameters => [.. _entries.Select(e => e.Master)];

    /// <summary>All float32 gradients (masters' and the other parameters'), as one flat tensor the object owns.</summary>
    public Tensor Gradients => _masterGrad;

    /// <summary>The float32 value of each parameter by name: the master of a working parameter, the parameter itself otherwise (views the object owns).</summary>
    public IEnumerable<(string Name, Tensor Value)> Values => _entries.Select(e => (e.Name, (Tensor)e.Master));

    /// <summary>Sets every gradient to zero (two kernels).</summary>
    public void ZeroGradients()
    {
        using var noGrad = no_grad();
        _masterGrad.fill_(0);
        _workGrad?.fill_(0);
    }

    /// <summary>Copies the working parameters' gradients into their masters' (one kernel, plus one per channels-last weight).</summary>
    public void GatherGradients()
    {
        if (_workGrad is null)
        {
            return;
        }

        Copy(_workGrad, _masterGrad, _laidOut.Select(e => (e.WorkGrad, e.MasterGrad)));
    }

    /// <summary>Rounds and lays out the masters into the model's working parameters: after a step, and after masters were loaded.</summary>
    public void PublishWeights()
    {
        if (_work is null)
        {
            return;
        }

        Copy(_master, _work, _laidOut.Select(e => (e.Master, e.Work)));
    }

    /// <summary>One kernel for the contiguous slice the two flat buffers share, one per channels-last parameter.</summary>
    private void Copy(Tensor from, Tensor to, IEnumerable<(Tensor From, Tensor To)> laidOut)
    {
        using var noGrad = no_grad();
        if (_flatCount > 0)
        {
            using var source = from.narrow(0, 0, _flatCount);
            using var target = to.narrow(0, 0, _flatCount);
            target.copy_(source);
        }

        foreach (var (source, target) in laidOut)
        {
            target.copy_(source);
        }
    }

    /// <summary>
    /// Gives the model back in float32, contiguous: working parameters take their master's exact value, every parameter gets
    /// storage and gradients of its own, and nothing refers to the buffers any more.
    /// </summary>
    /// <param name="model">The model the parameters belong to; its half modules are converted to float32 first.</param>
    /// <param name="convertToFloat32">Converts the model's modules to float32 (which replaces their half parameters).</param>
    public void Release(IMultiBranchModel model, Action convertToFloat32)
    {
        if (_released)
        {
            return;
        }

        _released = true;
        var masters = _entries.Select(e => (e.Name, Value: e.Master.detach().clone().DetachFromDisposeScope())).ToList();
        foreach (var (_, live, _) in _entries)
        {
            live.grad = null;
        }

        convertToFloat32();
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var noGrad = no_grad();
        foreach (var (name, value) in masters)
        {
            parameters[name].set_(value);
            value.Dispose();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var (_, live, master) in _entries)
        {
            if (!ReferenceEquals(master, live) && !master.IsInvalid)
            {
                master.grad = null;
                master.Dispose();
            }
        }

        foreach (var (work, master, workGrad, masterGrad) in _laidOut)
        {
            work.Dispose();
            master.Dispose();
            workGrad.Dispose();
            masterGrad.Dispose();
        }

        _master.Dispose();
        _masterGrad.Dispose();
        _work?.Dispose();
        _workGrad?.Dispose();
    }

    /// <summary>A parameter's slot in a flat buffer: contiguous, or channels-last (N, H, W, C in memory, seen as N, C, H, W).</summary>
    private static Tensor Slot(Tensor buffer, long offset, long[] shape, bool channelsLast)
    {
        var flat = buffer.narrow(0, offset, shape.Aggregate(1L, (a, b) => a * b));
        return channelsLast ? flat.view(shape[0], shape[2], shape[3], shape[1]).permute(0, 3, 1, 2) : flat.view(shape);
    }
}
