using static TorchSharp.torch;

namespace DTSKD.Core.Onnx.Import;

/// <summary>Gemm and MatMul by a constant as TorchSharp <c>Linear</c> layers whose weights train; MatMul of two computed values as it is.</summary>
internal static class DenseOperators
{
    private static readonly int[] Operands = [0, 1];

    public static OnnxStep Gemm(OnnxNodeContext c)
    {
        if (c.A.Int("transA", 0) != 0)
        {
            throw c.Refuse("transposes its input (transA=1); the importer takes Gemm as a dense layer.");
        }

        var b = c.RequireConstant(1, "weights");
        using var weight = (c.A.Int("transB", 0) != 0 ? b.alias() : b.t()).mul(c.A.Float("alpha", 1));
        var hasBias = c.Has(2);
        var linear = nn.Linear(weight.shape[1], weight.shape[0], hasBias: hasBias);
        using (no_grad())
        {
            linear.weight!.copy_(weight);
            if (hasBias)
            {
                var bias = c.RequireConstant(2, "bias");
                if (bias.numel() != 1 && bias.numel() != weight.shape[0])
                {
                    throw c.Refuse($"adds a C of shape [{string.Join(", ", bias.shape)}]; the importer takes one bias per output ({weight.shape[0]}).");
                }

                using var scaled = bias.reshape(-1).mul(c.A.Float("beta", 1)).expand(weight.shape[0]);
                linear.bias!.copy_(scaled);
            }
        }

        var name = c.Register(linear);
        return c.Unary(x => linear.call(x), (w, inputs) =>
        {
            List<string> ins = [inputs[0], w.Tensor($"{name}.weight", linear.weight!)];
            if (linear.bias is { } bias)
            {
                ins.Add(w.Tensor($"{name}.bias", bias));
            }

            return w.Node("Gemm", ins, [OnnxAttribute.Int("transB", 1)]);
        });
    }

    public static OnnxStep MatMul(OnnxNodeContext c)
    {
        if (c.ConstantAt(1) is { } b && b.dim() == 2 && !c.Folding)
        {
            // A dense layer (PyTorch's Linear on a map or a sequence exports as MatMul, then Add of its bias).
            var linear = nn.Linear(b.shape[0], b.shape[1], hasBias: false);
            using (no_grad())
            {
                using var weight = b.t();
                linear.weight!.copy_(weight);
            }

            var name = c.Register(linear);
            return c.Unary(x => linear.call(x), (w, inputs) =>
            {
                using var weight = linear.weight!.detach().t();
                return w.Node("MatMul", [inputs[0], w.Tensor($"{name}.weight", weight)], []);
            });
        }

        foreach (var i in Operands.Where(c.IsWeight))
        {
            c.Train(i);
        }

        return c.Op((x, _) =>
        {
            var (l, r) = OnnxTensors.Aligned(x[0]!, x[1]!);
            return l.matmul(r);
        });
    }
}
