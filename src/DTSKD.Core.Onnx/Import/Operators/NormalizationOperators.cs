using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Core.Onnx.Import;

/// <summary>
/// BatchNormalization as a TorchSharp <c>BatchNorm2d</c> (its running statistics kept, batch statistics while training,
/// as PyTorch does, whatever mode the file was exported in) and LayerNormalization as a <c>LayerNorm</c>.
/// </summary>
internal static class NormalizationOperators
{
    public static OnnxStep BatchNormalization(OnnxNodeContext c)
    {
        if (c.A.Int("spatial", 1) != 1)
        {
            throw c.Refuse("normalises per position (spatial=0); the importer takes per-channel batch norms.");
        }

        if (c.Node.Output.Skip(1).Any(o => o.Length > 0) || c.A.Int("training_mode", 0) != 0)
        {
            c.Note("The file's batch norms were exported in training mode: each is a TorchSharp batch norm, with the batch's statistics while training and the file's running statistics in evaluation.");
        }

        var (scale, shift) = (c.RequireConstant(1, "scale"), c.RequireConstant(2, "bias"));
        var (mean, variance) = (c.RequireConstant(3, "running mean"), c.RequireConstant(4, "running variance"));

        // ONNX keeps the momentum of the running average (0.9); PyTorch the weight of the new batch (0.1).
        var norm = nn.BatchNorm2d(scale.shape[0], eps: c.A.Float("epsilon", 1e-5f), momentum: 1 - c.A.Float("momentum", 0.9f));
        using (no_grad())
        {
            norm.weight!.copy_(scale);
            norm.bias!.copy_(shift);
            norm.running_mean!.copy_(mean);
            norm.running_var!.copy_(variance);
        }

        var name = c.Register(norm);
        var epsilon = c.A.Float("epsilon", 1e-5f);
        return c.Step((x, _) =>
        {
            // [N, C] and [N, C, L] normalise as [N, C, 1, 1] and [N, C, L, 1] would.
            var input = x[0]!;
            if (input.dim() == 4)
            {
                return [norm.call(input)];
            }

            using var map = input.dim() == 2 ? input.unsqueeze(-1).unsqueeze(-1) : input.unsqueeze(-1);
            using var normed = norm.call(map);
            return [normed.reshape(input.shape)];
        }, (w, inputs) => w.Node("BatchNormalization",
            [inputs[0], w.Tensor($"{name}.weight", norm.weight!), w.Tensor($"{name}.bias", norm.bias!), w.Tensor($"{name}.running_mean", norm.running_mean!), w.Tensor($"{name}.running_var", norm.running_var!)],
            [OnnxAttribute.Float("epsilon", epsilon)]), 0);
    }

    public static OnnxStep LayerNormalization(OnnxNodeContext c)
    {
        if (c.Node.Output.Skip(1).Any(o => o.Length > 0))
        {
            throw c.Refuse("is read for its mean or inverse deviation outputs; the importer takes its normalised output only.");
        }

        var scale = c.RequireConstant(1, "scale");
        var bias = c.Has(2) ? c.RequireConstant(2, "bias") : null;
        var axis = c.A.Int("axis", -1);
        var shape = scale.shape;
        var norm = nn.LayerNorm(shape, eps: c.A.Float("epsilon", 1e-5f));
        using (no_grad())
        {
            norm.weight!.copy_(scale);
            if (bias is null)
            {
                norm.bias!.zero_();
            }
            else
            {
                using var b = bias.expand(shape);
                norm.bias!.copy_(b);
            }
        }

        var name = c.Register(norm);
        var epsilon = c.A.Float("epsilon", 1e-5f);
        return c.Unary(x =>
        {
            var from = OnnxTensors.Axis(axis, x.dim(), c);
            if (x.dim() - from != shape.Length || !x.shape.Skip((int)from).SequenceEqual(shape))
            {
                throw new InvalidDataException($"{c.Where} normalises the dimensions from {axis} of [{string.Join(", ", x.shape)}] with a scale of [{string.Join(", ", shape)}]; the importer needs the scale to cover exactly those dimensions.");
            }

            return norm.call(x);
        }, (w, inputs) => w.Node("LayerNormalization", [inputs[0], w.Tensor($"{name}.weight", norm.weight!), w.Tensor($"{name}.bias", norm.bias!)],
            [OnnxAttribute.Int("axis", axis), OnnxAttribute.Float("epsilon", epsilon)]));
    }
}
