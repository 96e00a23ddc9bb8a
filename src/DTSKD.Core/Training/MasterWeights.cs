using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// Float32 master weights for a model whose convolutions and linear layers run in a half format: whatever optimizer
/// the run uses steps the masters, and the model's half weights are the masters, rounded. Each step's copies are single
/// kernels, because every tensor involved lives in one flat buffer.
/// </summary>
/// <remarks>
/// <para>
/// The model's half parameters become views into one half-format buffer (their gradients into a second), and their
/// float32 masters views into a float32 buffer that also holds the model's float32 parameters (BatchNorm), which are
/// their own masters. Gathering the gradients, unscaling them, checking them for overflow and publishing the updated
/// weights are then one kernel each, whatever the number of parameters.
/// </para>
/// <para>
/// The object owns the buffers. <see cref="Release"/> gives every parameter storage of its own again (the model is then
/// independent of this object, as before it was created).
/// </para>
/// </remarks>
internal sealed class MasterWeights : IDisposable
{
    private readonly (string Name, Parameter Live, Parameter Master)[] _entries;
    private readonly Tensor _master;
    private readonly Tensor _masterGrad;
    private readonly Tensor? _half;
    private readonly Tensor? _halfGrad;
    private readonly long _halfCount;
    private bool _released;

    /// <summary>Gathers the model's parameters (already in their training formats) into the buffers.</summary>
    /// <param name="parameters">Every parameter by name, on one device: float32, and at most one half format.</param>
    /// <param name="exact">The float32 values of the half parameters from before they were converted, by name: the masters start from them, not from their rounding.</param>
    public MasterWeights(IReadOnlyList<(string Name, Parameter Parameter)> parameters, IReadOnlyDictionary<string, Tensor>? exact = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var halfTypes = parameters.Select(p => p.Parameter.dtype).Where(t => t != ScalarType.Float32).Distinct().ToList();
        if (parameters.Count == 0 || halfTypes.Count > 1 || halfTypes.Any(t => t is not (ScalarType.BFloat16 or ScalarType.Float16))
            || parameters.Select(p => p.Parameter.device.ToString()).Distinct().Count() != 1)
        {
            throw new ArgumentException("Master weights need parameters on one device, in float32 and at most one half format.", nameof(parameters));
        }

        // Half parameters first, so their masters are one contiguous slice of the float32 buffer.
        var ordered = parameters.Where(p => p.Parameter.dtype != ScalarType.Float32).Concat(parameters.Where(p => p.Parameter.dtype == ScalarType.Float32)).ToList();
        var device = ordered[0].Parameter.device;
        _halfCount = ordered.Where(p => p.Parameter.dtype != ScalarType.Float32).Sum(p => p.Parameter.numel());
        var total = ordered.Sum(p => p.Parameter.numel());
        _master = empty([total], ScalarType.Float32, device).DetachFromDisposeScope();
        _masterGrad = zeros([total], ScalarType.Float32, device).DetachFromDisposeScope();
        if (halfTypes.Count == 1)
        {
            _half = empty([_halfCount], halfTypes[0], device).DetachFromDisposeScope();
            _halfGrad = zeros([_halfCount], halfTypes[0], device).DetachFromDisposeScope();
        }

        var entries = new List<(string, Parameter, Parameter)>();
        using var noGrad = no_grad();
        long offset = 0;
        foreach (var (name, p) in ordered)
        {
            var n = p.numel();
            using var scope = NewDisposeScope();
            var masterSlot = _master.narrow(0, offset, n).view(p.shape);
            masterSlot.copy_(exact is not null && exact.TryGetValue(name, out var value) ? value : p);
            Parameter master;
            if (p.dtype == ScalarType.Float32)
            {
                p.set_(masterSlot);
                master = p;
            }
            else
            {
                var halfSlot = _half!.narrow(0, offset, n).view(p.shape);
                halfSlot.copy_(p);
                p.set_(halfSlot);
                p.grad = _halfGrad!.narrow(0, offset, n).view(p.shape);
                master = new Parameter(masterSlot.view(p.shape).DetachFromDisposeScope());
            }

            master.grad = _masterGrad.narrow(0, offset, n).view(p.shape);
            entries.Add((name, p, master));
            offset += n;
        }

        // The optimizer sees the parameters in the model's order.
        var order = parameters.Select((p, i) => (p.Name, i)).ToDictionary(x => x.Name, x => x.i);
        _entries = [.. entries.OrderBy(e => order[e.Item1])];
    }

    /// <summary>What the optimizer steps, in the model's parameter order: the masters of half parameters, the float32 parameters themselves.</summary>
    public IReadOnlyList<Parameter> Parameters => [.. _entries.Select(e => e.Master)];

    /// <summary>All float32 gradients (masters' and float32 parameters'), as one flat tensor the object owns.</summary>
    public Tensor Gradients => _masterGrad;

    /// <summary>The float32 value of each parameter by name: the master of a half parameter, the parameter itself otherwise (views the object owns).</summary>
    public IEnumerable<(string Name, Tensor Value)> Values => _entries.Select(e => (e.Name, (Tensor)e.Master));

    /// <summary>Sets every gradient to zero (two kernels).</summary>
    public void ZeroGradients()
    {
        using var noGrad = no_grad();
        _masterGrad.fill_(0);
        _halfGrad?.fill_(0);
    }

    /// <summary>Copies the half parameters' gradients into their masters' (one kernel).</summary>
    public void GatherGradients()
    {
        if (_halfGrad is null)
        {
            return;
        }

        using var noGrad = no_grad();
        using var region = _masterGrad.narrow(0, 0, _halfCount);
        region.copy_(_halfGrad);
    }

    /// <summary>Rounds the masters into the model's half parameters (one kernel): after a step, and after masters were loaded.</summary>
    public void PublishWeights()
    {
        if (_half is null)
        {
            return;
        }

        using var noGrad = no_grad();
        using var region = _master.narrow(0, 0, _halfCount);
        _half.copy_(region);
    }

    /// <summary>
    /// Gives the model back in float32: half parameters take their master's exact value, every parameter gets storage and
    /// gradients of its own, and nothing refers to the buffers any more.
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
        var masters = _entries.Where(e => !ReferenceEquals(e.Master, e.Live)).Select(e => (e.Name, Value: e.Master.detach().clone().DetachFromDisposeScope())).ToList();
        foreach (var (_, live, _) in _entries)
        {
            live.grad = null;
        }

        convertToFloat32();
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var noGrad = no_grad();
        foreach (var (name, value) in masters)
        {
            parameters[name].copy_(value);
            value.Dispose();
        }

        // Float32 parameters still live in the master buffer: give each its own storage.
        foreach (var (name, live, master) in _entries.Where(e => ReferenceEquals(e.Master, e.Live)))
        {
            using var own = live.detach().clone();
            parameters[name].set_(own);
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

        _master.Dispose();
        _masterGrad.Dispose();
        _half?.Dispose();
        _halfGrad?.Dispose();
    }
}
