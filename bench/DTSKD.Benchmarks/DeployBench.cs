using System.Diagnostics;
using System.Globalization;
using System.Text;
using DTSKD.Core.Models;
using DTSKD.Core.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using DTSKD.Core.Deployment;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

namespace DTSKD.Benchmarks;

/// <summary>
/// Inference of the exported classifier: ONNX Runtime on the ONNX file (BatchNorm folded and not) against TorchSharp's
/// eval-mode backbone, at batch 1 and a larger batch, side by side in one run (the engines take turns, round after round).
/// </summary>
public static class DeployBench
{
    public static int Run(string modelName, bool referenceWidth, int imageSize, int[] batches, int rounds, double seconds, string? output, string command)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"Machine: {MachineInfo.Describe(CPU)}");
        manual_seed(1);
        var options = referenceWidth ? new MultiBranchModelOptions { ClassCount = 100 } : new MultiBranchModelOptions { ClassCount = 100, BaseWidth = 16, NeckWidth = 128 };
        using var model = MultiBranchModels.Create(modelName, options);
        model.eval();
        using var backbone = BackboneClassifier.From(model);
        var export = new OnnxExportOptions { ImageSize = imageSize, Mean = [0.5, 0.5, 0.5], Std = [0.25, 0.25, 0.25] };
        using var plain = new InferenceSession(OnnxExport.ToBytes(model, export));
        using var folded = new InferenceSession(OnnxExport.ToBytes(model, new OnnxExportOptions { ImageSize = imageSize, Mean = export.Mean, Std = export.Std, FoldBatchNorm = true }));

        var rows = new List<string>();
        foreach (var batch in batches)
        {
            manual_seed(2);
            using var x = randn(batch, 3, imageSize, imageSize);
            var input = new DenseTensor<float>(x.data<float>().ToArray(), [batch, 3, imageSize, imageSize]);
            var engines = new (string Name, Action Step)[]
            {
                ("TorchSharp eval (float32)", () =>
                {
                    using var scope = NewDisposeScope();
                    using var noGrad = no_grad();
                    _ = backbone.call(x).data<float>()[0];
                }),
                ("ONNX Runtime", () => Onnx(plain, input)),
                ("ONNX Runtime, BatchNorm folded", () => Onnx(folded, input)),
            };
            var samples = engines.ToDictionary(e => e.Name, _ => new List<double>());
            foreach (var (_, step) in engines)
            {
                for (var i = 0; i < 3; i++)
                {
                    step();
                }
            }

            // Each round gives every engine the same wall time, in turn, so a change in the machine's load meets all three.
            for (var round = 0; round < rounds; round++)
            {
                foreach (var (name, step) in engines)
                {
                    var clock = Stopwatch.StartNew();
                    while (clock.Elapsed.TotalSeconds < seconds / rounds)
                    {
                        var one = Stopwatch.StartNew();
                        step();
                        samples[name].Add(one.Elapsed.TotalMilliseconds);
                    }
                }
            }

            var torch = Median(samples[engines[0].Name]);
            foreach (var (name, _) in engines)
            {
                var v = samples[name];
                var median = Median(v);
                rows.Add(string.Create(inv, $"| {batch} | {name} | {median:F2} | {Percentile(v, 0.99):F2} | {batch * 1000 / median:F0} | {torch / median:F2}x | {v.Count} |"));
                Console.WriteLine(rows[^1]);
            }
        }

        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Measured on: {MachineInfo.Describe(CPU)}; ONNX Runtime {typeof(InferenceSession).Assembly.GetName().Version}, default session options (all graph optimisations, intra-op threads = cores).");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Command: `{command}`. The plain classifier of `{modelName}` ({(referenceWidth ? "reference width 64/512" : "width 16/128")}, 100 classes, {imageSize} x {imageSize} RGB input): TorchSharp's eval-mode backbone with gradients off against the exported ONNX file on ONNX Runtime; {rounds} rounds in which each engine runs for {seconds / rounds:F1} s in turn, latency per call from the first byte in to the logits out.");
        text.AppendLine();
        text.AppendLine("| batch | engine | median ms | p99 ms | images/s | speed-up over TorchSharp (median) | calls |");
        text.AppendLine("| --- | --- | --- | --- | --- | --- | --- |");
        rows.ForEach(r => text.AppendLine(r));
        Console.Write(text);
        if (output is not null)
        {
            BenchOutput.Write(output, text.ToString());
        }

        return 0;
    }

    private static void Onnx(InferenceSession session, DenseTensor<float> input)
    {
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(OnnxContract.InputName, input)]);
        _ = results[0].AsTensor<float>()[0, 0];
    }

    private static double Median(List<double> v) => Percentile(v, 0.5);

    private static double Percentile(List<double> v, double p)
    {
        var sorted = v.Order().ToArray();
        return sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
    }
}
