using System.Globalization;

namespace DTSKD.Samples.Cifar100.Tests;

/// <summary>Every checkpoint the trainer writes, in every precision, loads into evaluate, export, predict and --weights.</summary>
public sealed class HalfPrecisionRunTests : SampleTestBase
{
    [Theory]
    [InlineData("bf16", "BFloat16")]
    [InlineData("fp16", "Float16")]
    public async Task A_half_precision_run_evaluates_to_its_own_figures_exports_and_predicts(string option, string precision)
    {
        var (data, experiments, common) = TinyRun("half-" + option, train: 256, test: 64);
        (await Run([.. common.Select(a => a == "fp32" ? option : a), "--epochs", "1"])).Code.Should().Be(Sample.Ok);
        var run = Path.Combine(experiments, "half-" + option);
        ExperimentOutputs.ReadConfig(run).PrecisionUsed.Should().Be(precision);
        var row = File.ReadAllLines(Path.Combine(run, "metrics.csv")).Select(l => l.Split(',')).ToList();
        string Reported(string column, string format) =>
            double.Parse(row[1][Array.IndexOf(row[0], column)], CultureInfo.InvariantCulture).ToString(format, CultureInfo.InvariantCulture);

        // evaluate, on the run and on its checkpoint file: in the run's precision, the run's own numbers.
        foreach (var args in new[]
                 {
                     new[] { "evaluate", "--run", run },
                     ["evaluate", "--weights", Path.Combine(run, "last.ckpt"), "--data-path", data, "--base-width", "16", "--neck-width", "16"],
                 })
        {
            var (code, output, errors) = await Run(args);
            code.Should().Be(Sample.Ok, errors);
            output.Should().Contain($"test images, {precision})")
                .And.Contain($"backbone  top-1 {Reported("test_top1_backbone", "F2")}%")
                .And.Contain($"branch 3  top-1 {Reported("test_top1_branch3", "F2")}%")
                .And.Contain($"top-5 {Reported("test_top5_backbone", "F2")}%  loss {Reported("test_loss", "F4")}");
        }

        // export: the float32 classifier; predict with the run and with the export.
        var (exported, _, exportErrors) = await Run("export", "--run", run);
        exported.Should().Be(Sample.Ok, exportErrors);
        Core.Interop.PyTorchWeights.Describe(Path.Combine(run, "backbone.safetensors")).Values.Should().OnlyContain(t => t.DType == TorchSharp.torch.ScalarType.Float32 || t.DType == TorchSharp.torch.ScalarType.Int64);
        var records = File.ReadAllBytes(Path.Combine(data, "cifar-100-binary", "test.bin"));
        var png = WriteImage(records, 0, "first.png", SkiaSharp.SKEncodedImageFormat.Png);
        var (byRun, runOutput, runErrors) = await Run("predict", "--run", run, "--top", "2", png);
        byRun.Should().Be(Sample.Ok, runErrors);
        var (byExport, exportOutput, _) = await Run("predict", "--weights", Path.Combine(run, "backbone.pt"), "--data-path", data, "--base-width", "16", "--neck-width", "16", "--top", "2", png);
        byExport.Should().Be(Sample.Ok);
        exportOutput.Should().Be(runOutput);
    }
}
