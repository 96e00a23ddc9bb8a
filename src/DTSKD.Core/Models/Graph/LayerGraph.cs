using System.Globalization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Models;

/// <summary>
/// A network's forward pass as a graph of standard layers and operations, written by the network as it would compute
/// it; a subclass turns the graph into a file format (DTSKD.Core.Onnx writes ONNX). The five built-in networks, their
/// necks and <see cref="MultiBranchNetwork"/>s whose backbone implements <see cref="IBackboneGraph"/> describe themselves.
/// </summary>
/// <remarks>
/// <see cref="Layer"/> knows <c>Conv2d</c> (any groups, dilation, zero padding), <c>BatchNorm2d</c>, <c>ReLU</c>,
/// <c>Linear</c>, <c>MaxPool2d</c>, <c>AvgPool2d</c>, <c>AdaptiveAvgPool2d(1)</c>, <c>Flatten</c>, <c>Dropout</c> and
/// <c>Identity</c> (identities in inference), <c>Sequential</c> containers of them, and any module implementing
/// <see cref="IGraphDescribable"/>; anything else is refused with its path in the model and its type.
/// </remarks>
public abstract class LayerGraph
{
    private readonly Stack<string> _path = new();

    /// <summary>The path of the module being described, as in the model's state dict (for error messages and tensor names).</summary>
    public string Path => string.Join('.', _path.Reverse());

    /// <summary>Adds a module's forward pass.</summary>
    /// <param name="module">A supported TorchSharp layer, a <c>Sequential</c> of them, or an <see cref="IGraphDescribable"/>.</param>
    /// <param name="input">Its input.</param>
    /// <param name="name">Its name inside the module being described (its state-dict name part), for paths.</param>
    /// <returns>Its output.</returns>
    /// <exception cref="NotSupportedException">The module, or one inside it, cannot be described; the message names it.</exception>
    public GraphValue Layer(nn.Module module, GraphValue input, string name)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(name);
        _path.Push(name);
        try
        {
            return module switch
            {
                IGraphDescribable own => own.Describe(this, input),
                Sequential sequential => sequential.named_children().Aggregate(input, (x, child) => Layer(child.module, x, child.name)),
                Conv2d conv => Convolution(conv, input),
                BatchNorm2d norm => Normalization(norm, input),
                ReLU => Relu(input),
                Linear linear => Dense(linear, input),
                MaxPool2d pool when pool.dilation is null || pool.dilation.All(d => d == 1) =>
                    MaxPool(input, Pair(pool.kernel_size), Pair(pool.stride ?? pool.kernel_size), Pair(pool.padding ?? [0]), pool.ceil_mode),
                AvgPool2d pool when pool.count_include_pad || pool.padding is null || pool.padding.All(p => p == 0) =>
                    AveragePool(input, Pair(pool.kernel_size), Pair(pool.stride ?? pool.kernel_size), Pair(pool.padding ?? [0]), pool.ceil_mode),
                AdaptiveAvgPool2d pool when pool.output_size.All(s => s == 1) => GlobalAveragePool(input),
                Flatten flatten when flatten.start_dim == 1 && flatten.end_dim == -1 => Flatten(input),
                Dropout or Dropout2d or Identity => input,
                _ => throw Unsupported(module),
            };
        }
        finally
        {
            _path.Pop();
        }
    }

    /// <summary>ReLU.</summary>
    public abstract GraphValue Relu(GraphValue x);

    /// <summary>Element-wise addition of two values of one shape.</summary>
    public abstract GraphValue Add(GraphValue a, GraphValue b);

    /// <summary>Concatenation along the channels, in order.</summary>
    public abstract GraphValue ConcatChannels(IReadOnlyList<GraphValue> values);

    /// <summary>Splits the channels into equal consecutive parts (<c>x.narrow(1, ...)</c>).</summary>
    public abstract IReadOnlyList<GraphValue> SplitChannels(GraphValue x, int parts);

    /// <summary>ShuffleNet's channel shuffle: <c>x.view(b, g, c / g, h, w).transpose(1, 2).reshape(b, c, h, w)</c>.</summary>
    public abstract GraphValue ChannelShuffle(GraphValue x, int groups);

    /// <summary>2-D max pooling (<c>max_pool2d</c>).</summary>
    public abstract GraphValue MaxPool(GraphValue x, (long H, long W) kernel, (long H, long W) stride, (long H, long W) padding, bool ceilMode);

    /// <summary>2-D average pooling, zero padding counted (<c>avg_pool2d</c>'s default).</summary>
    public abstract GraphValue AveragePool(GraphValue x, (long H, long W) kernel, (long H, long W) stride, (long H, long W) padding, bool ceilMode);

    /// <summary>Average over the whole map: <c>adaptive_avg_pool2d(x, 1)</c>.</summary>
    public abstract GraphValue GlobalAveragePool(GraphValue x);

    /// <summary><c>x.flatten(1)</c>.</summary>
    public abstract GraphValue Flatten(GraphValue x);

    /// <summary>A feature of shape [N, C] or [N, C, 1, 1] as the map [N, C, 1, 1] (what the branch neck reads).</summary>
    public abstract GraphValue AsMap(GraphValue feature);

    /// <summary>Pads the height and width with a constant: <paramref name="pads"/> rows or columns on each side (an imported network's asymmetric padding).</summary>
    /// <param name="x">A map [N, C, H, W].</param>
    /// <param name="pads">Rows above and below, columns left and right.</param>
    /// <param name="value">The padding value (negative infinity before a max pool).</param>
    /// <exception cref="NotSupportedException">This graph does not describe explicit padding (the default).</exception>
    public virtual GraphValue Pad(GraphValue x, (long Top, long Left, long Bottom, long Right) pads, float value) =>
        throw new NotSupportedException($"Cannot describe '{Path}': this graph has no explicit padding.");

    /// <summary>Describes a part of the model under a name of the path (a module that is not called through <see cref="Layer"/>).</summary>
    internal T Within<T>(string name, Func<T> describe)
    {
        _path.Push(name);
        try
        {
            return describe();
        }
        finally
        {
            _path.Pop();
        }
    }

    /// <summary>A convolution layer (its weights are read at <see cref="Path"/>).</summary>
    protected abstract GraphValue Convolution(Conv2d conv, GraphValue x);

    /// <summary>A batch norm in inference: its running statistics.</summary>
    protected abstract GraphValue Normalization(BatchNorm2d norm, GraphValue x);

    /// <summary>A linear layer.</summary>
    protected abstract GraphValue Dense(Linear linear, GraphValue x);

    /// <summary>The exception for a module the graph cannot describe, naming it.</summary>
    protected NotSupportedException Unsupported(nn.Module module, string? why = null) => new(
        $"Cannot export '{Path}' ({module.GetType().FullName}){(why is null ? "" : ": " + why)}. Supported: Conv2d, BatchNorm2d, ReLU, Linear, MaxPool2d, " +
        "AvgPool2d, AdaptiveAvgPool2d(1), Flatten(1), Dropout, Identity, Sequential, and modules implementing IGraphDescribable.");

    /// <summary>A convolution's zero padding per side (height, width), from its explicit padding or its 'same'/'valid' mode.</summary>
    protected (long H, long W) PaddingOf(Conv2d conv)
    {
        ArgumentNullException.ThrowIfNull(conv);
        if (conv.padding_mode != TorchSharp.PaddingModes.Zeros)
        {
            throw Unsupported(conv, $"padding mode {conv.padding_mode}");
        }

        if (conv.padding is { } explicitPadding)
        {
            return Pair(explicitPadding);
        }

        if (conv.padding_type == TorchSharp.Padding.Valid)
        {
            return (0, 0);
        }

        var (kh, kw) = Pair(conv.kernel_size);
        var (dh, dw) = Pair(conv.dilation);
        if (((kh - 1) * dh) % 2 != 0 || ((kw - 1) * dw) % 2 != 0)
        {
            throw Unsupported(conv, "'same' padding of an even kernel pads one side more");
        }

        return ((kh - 1) * dh / 2, (kw - 1) * dw / 2);
    }

    /// <summary>A one- or two-element size as (height, width).</summary>
    protected static (long H, long W) Pair(long[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        return values.Length switch
        {
            1 => (values[0], values[0]),
            2 => (values[0], values[1]),
            _ => throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"expected 1 or 2 sizes, got {values.Length}."), nameof(values)),
        };
    }
}
