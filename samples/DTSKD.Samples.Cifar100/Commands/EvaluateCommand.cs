using System.Globalization;
using DTSKD.Core.Data;
using DTSKD.Core.Interop;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100;

/// <summary><c>evaluate</c>: a trained run (or weights) on the test set again, in the run's precision by default.</summary>
internal static class EvaluateCommand
{
    public static async Task RunAsync(
        MultiBranchModule model, ExperimentConfig options, IBatchAugmentation preprocessing, Device device, CheckpointSummary? summary, bool backboneOnly, string precisionOption, IAnsiConsole console, CancellationToken ct,
        string? runFolder = null, string? tsneFolder = null)
    {
        var (data, _, files) = await SampleData.LoadAsync(options with { TrainLimit = 1, Download = false }, console, ct).ConfigureAwait(false);
        using var _ = data;

        // Never another split in silence: a folder run is evaluated on the files it trained beside, or not at all.
        if (runFolder is not null && files is not null && FolderKey.Changes(runFolder, files) is { } changed)
        {
            throw new InvalidDataException($"evaluate: the folder '{options.ResolvedDataPath}' is not the one the run read: {changed}. Its test split would be other images; point --data-path at the run's folder, or restore it.");
        }

        model.to(device);

        // As the run evaluated itself, unless asked otherwise: a half-precision run's figures come back only in its precision.
        var precision = precisionOption == "run" ? summary?.Precision ?? TrainingPrecision.Float32 : SampleRecipe.Precision(options with { Precision = precisionOption }, device);
        // The run's own normalisation (a pretrained network's, as config.json records it), not the data's statistics.
        var result = Evaluator.Evaluate(model, data.Test, preprocessing, device, options.EvalBatchSize, precision);
        var inv = CultureInfo.InvariantCulture;
        console.WriteLine(string.Create(inv, $"{options.ClassifierType} on {data.Test.Name} ({result.Count} test images, {precision}):"));
        for (var h = 0; h < (backboneOnly ? 1 : result.Top1.Count); h++)
        {
            console.WriteLine(string.Create(inv, $"  {(h == 0 ? "backbone" : $"branch {h}"),-9} top-1 {result.Top1[h]:F2}%"));
        }

        console.WriteLine(string.Create(inv, $"  backbone  top-5 {result.Top5:F2}%  loss {result.Loss:F4}"));
        if (summary is { Metrics.Count: > 0 } s && s.StepsDone == 0)
        {
            var m = s.Metrics[^1];
            console.WriteLine(string.Create(inv, $"The run reported for epoch {m.Epoch + 1}: backbone top-1 {m.TestTop1[0]:F2}%, top-5 {m.TestTop5:F2}%, loss {m.TestLoss:F4}."));
        }

        if (tsneFolder is not null)
        {
            console.WriteLine(TsneOutputs.Write(tsneFolder, model, data.Test, preprocessing, device, options.EvalBatchSize, options.Seed, data.Test.ClassNames));
        }
    }
}
