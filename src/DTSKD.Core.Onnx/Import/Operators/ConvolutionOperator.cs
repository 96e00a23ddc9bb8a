using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core.Onnx.Import;

/// <summary>Conv as a TorchSharp <c>Conv2d</c> whose weights train; asymmetric and SAME pads applied explicitly.</summary>
internal static class ConvolutionOperator
{
    public static OnnxStep Conv(OnnxNodeContext c)
    {
        var loaded = c.RequireConstant(1, "weights");
        if (loaded.dim() != 4)
        {
            throw c.Refuse($"has a {loaded.dim() - 2}-D kernel; the importer takes 2-D convolutions.");
        }

        using var weight = c.FirstConvolution is { } adapt ? adapt(loaded) : loaded.alias();
        var groups = c.A.Int("group", 1);
        var (kh, kw) = (weight.shape[2], weight.shape[3]);
        var strides = c.A.Ints("strides") ?? [1, 1];
        var dilations = c.A.Ints("dilations") ?? [1, 1];
        var pads = SpatialPadding.Of(c.A, kh, kw, strides, dilations);
        var bias = c.ConstantAt(2);
        if (c.Has(2) && bias is null)
        {
            c.RequireConstant(2, "bias");
        }

        var conv = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], (kh, kw), stride: (strides[0], strides[1]),
            padding: pads.Symmetric ? (pads.Fixed![0], pads.Fixed[1]) : (0, 0), dilation: (dilations[0], dilations[1]), groups: groups, bias: bias is not null);
        using (no_grad())
        {
            conv.weight!.copy_(weight);
            if (bias is not null)
            {
                conv.bias!.copy_(bias);
            }
        }

        var name = c.Register(conv);
        var attributes = c.A;
        return c.Unary(x => conv.call(pads.Symmetric ? x : pads.Apply(x, 0)), (w, inputs) =>
        {
            // The file's attributes (pads, auto_pad, strides) with the trained weights (adapted for gray or BGR input where they were).
            List<string> ins = [inputs[0], w.Tensor($"{name}.weight", conv.weight!)];
            if (conv.bias is { } b)
            {
                ins.Add(w.Tensor($"{name}.bias", b));
            }

            return w.Node("Conv", ins, attributes.Copies("kernel_shape").Append(OnnxAttribute.Ints("kernel_shape", [kh, kw])));
        });
    }
}
