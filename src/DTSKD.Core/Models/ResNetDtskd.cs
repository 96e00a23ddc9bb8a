using static TorchSharp.torch;
using TorchSharp.Modules;
using static TorchSharp.torch.nn;

namespace DTSKD.Core.Models;

/// <summary>
/// The reference multi-branch CIFAR ResNets of DTSKD (<c>resnet18_dtskd</c>, <c>resnet34_dtskd</c>): a CIFAR-style
/// ResNet with BasicBlocks, and a <see cref="BranchNeck"/> over its first three stages giving three branch heads.
/// </summary>
/// <remarks>
/// Built to the reference's letter: the same layers, wiring, default (PyTorch) initialisation, and the same
/// state-dict names and shapes (<c>conv1</c>, <c>bn1</c>, <c>layer1..4</c>, <c>fc</c>, and the neck's
/// <c>laterals.*</c>, <c>upsample.*</c>, <c>fuse_1..3</c>, <c>fc_b1..3</c> at the top level), so weights can be
/// exchanged with the PyTorch release.
/// </remarks>
internal sealed class ResNetDtskd : MultiBranchModule
{
    private readonly Module<Tensor, Tensor> conv1;
    private readonly Module<Tensor, Tensor> bn1;
    private readonly Sequential[] _layers;
    private readonly Linear fc;
    private readonly BranchNeck _neck;

    private ResNetDtskd(string name, int[] blocks, MultiBranchModelOptions options) : base(name)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        TorchSharpRuntime.EnsureLoaded();
        Options = options;

        var widths = Enumerable.Range(0, 4).Select(s => options.BaseWidth << s).ToArray();
        conv1 = Conv2d(options.InputChannels, widths[0], kernel_size: 3, stride: 1, padding: 1, bias: false);
        bn1 = BatchNorm2d(widths[0]);
        _layers = new Sequential[4];
        long inPlanes = widths[0];
        for (var s = 0; s < 4; s++)
        {
            var stride = s == 0 ? 1 : 2;
            var stage = new List<Module<Tensor, Tensor>>();
            for (var b = 0; b < blocks[s]; b++)
            {
                stage.Add(new BasicBlock(inPlanes, widths[s], b == 0 ? stride : 1));
                inPlanes = widths[s];
            }

            _layers[s] = Sequential(stage.ToArray());
        }

        fc = Linear(widths[3], options.ClassCount);
        _neck = new BranchNeck(widths[..3], widths[3], options.ClassCount, options.NeckWidth);

        register_module(nameof(conv1), conv1);
        register_module(nameof(bn1), bn1);
        for (var s = 0; s < 4; s++)
        {
            register_module($"layer{s + 1}", _layers[s]);
        }

        register_module(nameof(fc), fc);

        // The neck's parts sit at the top level, under the reference's names.
        foreach (var (childName, child) in _neck.named_children())
        {
            register_module(childName, child);
        }
    }

    /// <summary>The size options the model was built with.</summary>
    public MultiBranchModelOptions Options { get; }

    /// <inheritdoc />
    public override int ClassCount => Options.ClassCount;

    /// <inheritdoc />
    public override int BranchCount => _neck.BranchCount;

    /// <summary>Builds <c>resnet18_dtskd</c> (BasicBlocks [2, 2, 2, 2]); 13,971,920 parameters with the default options.</summary>
    /// <param name="options">Size options; null for the reference (CIFAR-100).</param>
    internal static ResNetDtskd ResNet18(MultiBranchModelOptions? options = null) =>
        new("resnet18_dtskd", [2, 2, 2, 2], options ?? new MultiBranchModelOptions());

    /// <summary>Builds <c>resnet34_dtskd</c> (BasicBlocks [3, 4, 6, 3]); 24,080,080 parameters with the default options.</summary>
    /// <param name="options">Size options; null for the reference (CIFAR-100).</param>
    internal static ResNetDtskd ResNet34(MultiBranchModelOptions? options = null) =>
        new("resnet34_dtskd", [3, 4, 6, 3], options ?? new MultiBranchModelOptions());

    /// <summary>Runs the backbone and the neck.</summary>
    /// <param name="input">Images, [B, InputChannels, H, W].</param>
    /// <returns>Backbone logits (<c>fc</c>) and branch logits (<c>fc_b1</c>, <c>fc_b2</c>, <c>fc_b3</c>).</returns>
    public override MultiBranchOutput forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() != 4 || input.shape[1] != Options.InputChannels)
        {
            throw new ArgumentException(
                $"input must be [batch, {Options.InputChannels}, height, width]; got {TensorChecks.Shape(input)}.", nameof(input));
        }

        using var scope = NewDisposeScope();
        var x = functional.relu(bn1.call(conv1.call(input)));
        var stages = new Tensor[4];
        for (var s = 0; s < 4; s++)
        {
            x = stages[s] = _layers[s].call(x);
        }

        var feature = functional.adaptive_avg_pool2d(stages[3], 1);
        var backbone = fc.call(feature.flatten(1));
        var branches = _neck.call(stages[..3], feature);
        return new MultiBranchOutput(backbone, branches).MoveToOuterDisposeScope();
    }

    // Every component is registered explicitly in the constructor, so that the neck's parts keep the
    // reference's top-level names and the neck object itself is not registered a second time.
    /// <inheritdoc />
    protected override void RegisterComponents()
    {
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _neck.Dispose();
        }

        base.Dispose(disposing);
    }
}
