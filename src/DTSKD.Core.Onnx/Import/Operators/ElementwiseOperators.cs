using Onnx;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DTSKD.Core.Onnx.Import;

/// <summary>
/// Element-wise operators: arithmetic with numpy broadcasting (a weight of the file among its operands trains: a layer
/// scale, a decomposed layer norm's scale and shift, a dense layer's bias), activations, Dropout and Identity.
/// </summary>
internal static class ElementwiseOperators
{
    private static readonly int[] Operands = [0, 1];

    /// <summary>Add, Sub, Mul, Div, Pow: integer operands divide as ONNX does (truncating).</summary>
    public static OnnxStep Binary(OnnxNodeContext c)
    {
        var op = c.Node.OpType;
        if (op != "Pow")
        {
            foreach (var i in Operands.Where(c.IsWeight))
            {
                c.Train(i);
            }
        }

        return c.Op((x, _) =>
        {
            var (a, b) = OnnxTensors.Aligned(x[0]!, x[1]!);
            var integers = OnnxTensors.IsInteger(a) && OnnxTensors.IsInteger(b);
            return op switch
            {
                "Add" => a.add(b),
                "Sub" => a.sub(b),
                "Mul" => a.mul(b),
                "Div" when integers => a.div(b, rounding_mode: RoundingMode.trunc),
                "Div" => a.div(b),
                _ when integers => a.pow(b),
                _ => a.pow(b.to(a.dtype)),
            };
        });
    }

    /// <summary>Equal, Less, Greater: booleans (computing shapes, as an Expand to -1 exports).</summary>
    public static OnnxStep Compare(OnnxNodeContext c)
    {
        var op = c.Node.OpType;
        return c.Op((x, _) =>
        {
            var (a, b) = OnnxTensors.Aligned(x[0]!, x[1]!);
            return op switch
            {
                "Equal" => a.eq(b),
                "Less" => a.lt(b),
                _ => a.gt(b),
            };
        });
    }

    /// <summary>Where: the first operand where the condition holds, else the second.</summary>
    public static OnnxStep Where(OnnxNodeContext c) => c.Op((x, _) =>
    {
        var (a, b) = OnnxTensors.Aligned(x[1]!, x[2]!);
        return where(x[0]!.to(a.device).to(ScalarType.Bool), a, b);
    });

    /// <summary>Not of booleans.</summary>
    public static OnnxStep Not(OnnxNodeContext c) => c.Unary(x => x.logical_not());

    /// <summary>Activations and unary functions of one input; <c>Identity</c> is the input itself.</summary>
    public static OnnxStep Unary(OnnxNodeContext c)
    {
        var a = c.A;
        Func<Tensor, Tensor> run = c.Node.OpType switch
        {
            "Relu" => x => F.relu(x),
            "Sigmoid" => x => x.sigmoid(),
            "Tanh" => x => x.tanh(),
            "Erf" => x => x.erf(),
            "Sqrt" => x => x.sqrt(),
            "Exp" => x => x.exp(),
            "Log" => x => x.log(),
            "Neg" => x => x.neg(),
            "Abs" => x => x.abs(),
            "Reciprocal" => x => x.reciprocal(),
            "Floor" => x => x.floor(),
            "Ceil" => x => x.ceil(),
            "Softplus" => x => F.softplus(x),
            "LeakyRelu" => x => F.leaky_relu(x, a.Float("alpha", 0.01f)),
            "HardSwish" => x => F.hardswish(x),
            "HardSigmoid" => HardSigmoid(a.Float("alpha", 0.2f), a.Float("beta", 0.5f)),
            "Identity" => x => x.alias(),
            var other => throw c.Refuse($"is not an element-wise operator ({other})."),
        };
        return c.Unary(run, c.Node.OpType == "Identity" ? OnnxStep.PassThrough : null);
    }

    private static Func<Tensor, Tensor> HardSigmoid(float alpha, float beta) => x => x.mul(alpha).add(beta).clamp(0, 1);

    /// <summary>Gelu (opset 20), written for export as its Erf or Tanh form (opset 17 has no Gelu).</summary>
    public static OnnxStep Gelu(OnnxNodeContext c)
    {
        var tanh = c.A.String("approximate", "none") switch
        {
            "none" => false,
            "tanh" => true,
            var other => throw c.Refuse($"approximates as '{other}'; Gelu knows 'none' and 'tanh'."),
        };
        return c.Unary(x => tanh ? F.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh) : F.gelu(x), (w, inputs) =>
        {
            var x = inputs[0];
            string inner;
            if (tanh)
            {
                // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
                var cube = w.Single("Mul", [w.Single("Mul", [x, x]), x]);
                var sum = w.Single("Add", [x, w.Single("Mul", [cube, w.Scalar("gelu_c", 0.044715f)])]);
                inner = w.Single("Tanh", [w.Single("Mul", [sum, w.Scalar("gelu_k", (float)Math.Sqrt(2 / Math.PI))])]);
            }
            else
            {
                // 0.5 x (1 + erf(x / sqrt(2)))
                inner = w.Single("Erf", [w.Single("Div", [x, w.Scalar("gelu_sqrt2", (float)Math.Sqrt(2))])]);
            }

            var one = w.Single("Add", [inner, w.Scalar("gelu_one", 1)]);
            return [w.Single("Mul", [w.Single("Mul", [x, one]), w.Scalar("gelu_half", 0.5f)])];
        });
    }

    /// <summary>Clip: bounds as attributes before opset 11, as (constant) inputs after; written with inputs.</summary>
    public static OnnxStep Clip(OnnxNodeContext c)
    {
        double Bound(int input, string attribute, float fallback) =>
            c.Opset < 11 ? c.A.Float(attribute, fallback)
            : c.Has(input) ? OnnxTensors.Doubles(c.RequireConstant(input, attribute + " bound"))[0]
            : fallback;

        var (min, max) = (Bound(1, "min", float.NegativeInfinity), Bound(2, "max", float.PositiveInfinity));
        return c.Unary(x => x.clamp(min, max), (w, inputs) =>
            w.Node("Clip", [inputs[0], double.IsNegativeInfinity(min) ? "" : w.Scalar("clip_min", (float)min), double.IsPositiveInfinity(max) ? "" : w.Scalar("clip_max", (float)max)], []));
    }

    /// <summary>PRelu: its slope trains.</summary>
    public static OnnxStep PRelu(OnnxNodeContext c)
    {
        c.RequireConstant(1, "slope");
        if (!c.Folding)
        {
            c.Train(1);
        }

        return c.Op((x, _) =>
        {
            var (input, slope) = OnnxTensors.Aligned(x[0]!, x[1]!);
            using var positive = input.clamp_min(0);
            using var negative = input.clamp_max(0);
            using var scaled = negative.mul(slope);
            return positive.add(scaled);
        });
    }

    /// <summary>Softmax and LogSoftmax: before opset 13 over every dimension from the axis (the input as a matrix), from 13 over the axis alone.</summary>
    public static OnnxStep Softmax(OnnxNodeContext c)
    {
        var log = c.Node.OpType == "LogSoftmax";
        var flattening = c.Opset < 13;
        var axis = c.A.Int("axis", flattening ? 1 : -1);
        Tensor Apply(Tensor x, long dim) => log ? x.log_softmax(dim) : x.softmax(dim);
        return c.Unary(x =>
        {
            var from = OnnxTensors.Axis(axis, x.dim(), c);
            if (!flattening || from == x.dim() - 1)
            {
                return Apply(x, from);
            }

            using var matrix = x.reshape(x.shape.Take((int)from).Aggregate(1L, (p, v) => p * v), -1);
            using var soft = Apply(matrix, 1);
            return soft.reshape(x.shape);
        }, (w, inputs) =>
        {
            var op = log ? "LogSoftmax" : "Softmax";
            if (!flattening)
            {
                return w.Node(op, inputs, [OnnxAttribute.Int("axis", axis)]);
            }

            // The opset-12 form over the flattened dimensions, as opset 17 writes it.
            var flat = w.Single("Flatten", [inputs[0]], OnnxAttribute.Int("axis", axis));
            var soft = w.Single(op, [flat], OnnxAttribute.Int("axis", 1));
            return [w.Single("Reshape", [soft, w.Single("Shape", [inputs[0]])])];
        });
    }

    /// <summary>Dropout: random while the network trains, the identity in evaluation and in export (the ratio from its attribute or input).</summary>
    public static OnnxStep Dropout(OnnxNodeContext c)
    {
        if (c.Node.Output.Count > 1 && c.Node.Output[1].Length > 0)
        {
            c.Note($"Dropout '{c.Name}' has a mask output; nothing the backbone computes reads it.");
        }

        double ratio = c.Opset < 12 ? c.A.Float("ratio", 0.5f) : c.Has(1) ? OnnxTensors.Doubles(c.RequireConstant(1, "ratio"))[0] : 0.5;
        return c.Op((x, mode) => mode.Training && ratio > 0 ? F.dropout(x[0]!, ratio, training: true) : x[0]!.alias(), OnnxStep.PassThrough, 0);
    }
}
