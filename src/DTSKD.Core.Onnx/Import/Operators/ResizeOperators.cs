using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace DTSKD.Core.Onnx.Import;

/// <summary>
/// Resize and Upsample of height and width as TorchSharp's interpolate: nearest (asymmetric, floor: PyTorch's nearest;
/// half-pixel rounding up: nearest-exact), linear and cubic (half-pixel or align-corners). Other combinations are refused
/// by name. Written for export as Resize with scales or sizes.
/// </summary>
internal static class ResizeOperators
{
    public static OnnxStep Resize(OnnxNodeContext c)
    {
        var upsample = c.Node.OpType == "Upsample";
        var mode = c.A.String("mode", "nearest");
        var transform = upsample || c.Opset < 11 ? "asymmetric" : c.A.String("coordinate_transformation_mode", "half_pixel");
        var rounding = c.A.String("nearest_mode", upsample || c.Opset < 11 ? "floor" : "round_prefer_floor");
        var cubicA = c.A.Float("cubic_coeff_a", -0.75f);
        var (interpolation, alignCorners) = (mode, transform) switch
        {
            ("nearest", "asymmetric") when rounding == "floor" => (InterpolationMode.Nearest, (bool?)null),
            ("nearest", "half_pixel" or "pytorch_half_pixel" or "tf_half_pixel_for_nn") when rounding == "round_prefer_ceil" => (InterpolationMode.NearestExact, null),
            ("linear" or "bilinear", "half_pixel" or "pytorch_half_pixel") => (InterpolationMode.Bilinear, false),
            ("linear" or "bilinear", "align_corners") => (InterpolationMode.Bilinear, true),
            ("cubic" or "bicubic", "half_pixel" or "pytorch_half_pixel") when cubicA == -0.75f => (InterpolationMode.Bicubic, false),
            ("cubic" or "bicubic", "align_corners") when cubicA == -0.75f => (InterpolationMode.Bicubic, true),
            _ => throw c.Refuse($"resizes in mode '{mode}' with coordinates '{transform}'{(mode == "nearest" ? $" and rounding '{rounding}'" : "")}, which PyTorch's interpolate does not compute; " +
                "the importer takes nearest (asymmetric and floor, or half-pixel and round_prefer_ceil), linear and cubic (half_pixel or align_corners)."),
        };
        if (c.A.Int("exclude_outside", 0) != 0 || c.A.Int("antialias", 0) != 0 || c.A.Has("axes"))
        {
            throw c.Refuse("uses exclude_outside, antialias or axes; the importer takes plain resizes of height and width.");
        }

        // Upsample-7: scales attribute; Upsample-9 and Resize-10: scales input 1; Resize-11+: roi 1, scales 2, sizes 3.
        var (scalesInput, sizesInput) = upsample ? (c.Opset < 9 ? -1 : 1, -1) : c.Opset < 11 ? (1, -1) : (2, 3);
        var fixedScales = upsample && c.Opset < 9 ? c.A.Floats("scales")?.Select(v => (double)v).ToArray()
            : scalesInput >= 0 && c.ConstantAt(scalesInput) is { } s && s.numel() > 0 ? OnnxTensors.Doubles(s) : null;
        var fixedSizes = sizesInput >= 0 && c.ConstantAt(sizesInput) is { } z && z.numel() > 0 ? OnnxTensors.Longs(z) : null;
        List<int> uses = [0];
        if (fixedScales is null && fixedSizes is null)
        {
            uses.Add(sizesInput >= 0 && c.Has(sizesInput) ? sizesInput : scalesInput);
        }

        var runtimeSizes = fixedScales is null && fixedSizes is null && sizesInput >= 0 && c.Has(sizesInput);
        return c.Op((x, _) =>
        {
            var input = x[0]!;
            if (input.dim() != 4)
            {
                throw new InvalidDataException($"{c.Where} resizes a tensor of {input.dim()} dimensions; the importer resizes the height and width of 4-D maps.");
            }

            var sizes = fixedSizes ?? (runtimeSizes ? OnnxTensors.Longs(x[1]!) : null);
            var scales = sizes is null ? fixedScales ?? OnnxTensors.Doubles(x[1]!) : null;
            if ((scales ?? sizes!.Select(v => (double)v).ToArray()) is { Length: 4 } all && (sizes is null ? all[0] != 1 || all[1] != 1 : sizes[0] != input.shape[0] || sizes[1] != input.shape[1]))
            {
                throw new InvalidDataException($"{c.Where} resizes the batch or channels; the importer resizes height and width.");
            }

            return sizes is not null
                ? F.interpolate(input, [sizes[2], sizes[3]], mode: interpolation, align_corners: alignCorners)
                : F.interpolate(input, scale_factor: [scales![2], scales[3]], mode: interpolation, align_corners: alignCorners);
        }, (w, inputs) =>
        {
            List<global::Onnx.AttributeProto> attributes =
            [
                OnnxAttribute.String("mode", interpolation switch { InterpolationMode.Nearest or InterpolationMode.NearestExact => "nearest", InterpolationMode.Bilinear => "linear", _ => "cubic" }),
                OnnxAttribute.String("coordinate_transformation_mode", alignCorners == true ? "align_corners" : interpolation == InterpolationMode.Nearest ? "asymmetric" : "half_pixel"),
                OnnxAttribute.String("nearest_mode", interpolation == InterpolationMode.Nearest ? "floor" : "round_prefer_ceil"),
            ];
            if (fixedSizes is not null)
            {
                return w.Node("Resize", [inputs[0], "", "", w.Longs("sizes", fixedSizes)], attributes);
            }

            if (fixedScales is not null)
            {
                using var scales = tensor(fixedScales.Select(v => (float)v).ToArray(), [fixedScales.LongLength]);
                return w.Node("Resize", [inputs[0], "", w.Tensor("scales", scales)], attributes);
            }

            return w.Node("Resize", runtimeSizes ? [inputs[0], "", "", inputs[1]] : [inputs[0], "", inputs[1]], attributes);
        }, [.. uses]);
    }
}
