using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Onnx.Import;

/// <summary>The state of one import while its steps are built: the constants, and the modules, trained weights and notes made so far.</summary>
internal sealed class OnnxBuild(OnnxGraph graph, OnnxConstants constants, long declaredBatch)
{
    private readonly List<string> _notes = [];

    public int Opset => graph.Opset;

    public long DeclaredBatch => declaredBatch;

    public string ImageInput => graph.Input.Name;

    /// <summary>How the first convolution's weights change (gray images, BGR order), set once the needed nodes are known.</summary>
    public Func<Tensor, Tensor>? FirstConvolution { get; set; }

    public OnnxConstants Constants => constants;

    /// <summary>The modules made so far (name, module), registered by the backbone.</summary>
    public List<(string Name, nn.Module Module)> Modules { get; } = [];

    /// <summary>The trained weights of element-wise nodes (a layer scale, a decomposed layer norm's scale and shift): step input key, name, value.</summary>
    public List<(string Key, string Name, Parameter Value)> Parameters { get; } = [];

    /// <summary>The names (modules and weights) each node made, by node name (for its stage's parameters).</summary>
    public Dictionary<string, List<string>> Made { get; } = new(StringComparer.Ordinal);

    public IReadOnlyList<string> Notes => _notes;

    public void Note(string note)
    {
        if (!_notes.Contains(note))
        {
            _notes.Add(note);
        }
    }

    public string Register(string node, nn.Module module)
    {
        var name = Unique(Sanitise(node));
        Modules.Add((name, module));
        Remember(node, name);
        return name;
    }

    public string Parameter(string node, Tensor value)
    {
        var name = Unique(Sanitise(node) + "_weight");
        using var copy = value.detach().clone();
        var parameter = new Parameter(copy);

        // Owned by the backbone that registers it, whatever dispose scope the import runs in.
        parameter.DetachFromDisposeScope();
        Parameters.Add(("weight:" + name, name, parameter));
        Remember(node, name);
        return "weight:" + name;
    }

    internal static string Sanitise(string name) => new([.. name.Select(c => char.IsAsciiLetterOrDigit(c) || c == '_' ? c : '_')]);

    private void Remember(string node, string name)
    {
        if (!Made.TryGetValue(node, out var names))
        {
            Made[node] = names = [];
        }

        names.Add(name);
    }

    private string Unique(string name)
    {
        while (Modules.Any(m => m.Name == name) || Parameters.Any(p => p.Name == name))
        {
            name += "_";
        }

        return name;
    }
}
