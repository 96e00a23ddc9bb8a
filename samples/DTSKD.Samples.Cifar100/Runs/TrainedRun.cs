using System.Globalization;
using DTSKD.Core.Data;
using DTSKD.Core.Interop;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100;

/// <summary>The trained model an after-training command works on: a run folder's configuration and checkpoint, or a weights file.</summary>
internal static class TrainedRun
{
    public static (ExperimentConfig Options, string Weights) Resolve(ToolRequest request)
    {
        var options = request.Options;
        string? checkpoint = null;
        if (request.Run is { } run)
        {
            if (!File.Exists(Path.Combine(run, "config.json")))
            {
                throw new FileNotFoundException($"'{run}' is not a run folder: it has no config.json (give --run the folder training wrote, or --weights a file).");
            }

            var saved = ExperimentOutputs.ReadConfig(run);

            // The run decides the model and the data; the command line may point at another copy of the data, or use part of it.
            options = saved with
            {
                DataPath = request.Options.DataPath ?? saved.DataPath,
                TestLimit = request.Options.TestLimit ?? saved.TestLimit,
                Device = request.Options.Device,
                Threads = request.Options.Threads,
            };
            checkpoint = request.Checkpoint switch
            {
                "best" => File.Exists(Path.Combine(run, "best.ckpt")) ? Path.Combine(run, "best.ckpt") : Path.Combine(run, "last.ckpt"),
                "last" => Path.Combine(run, "last.ckpt"),
                var file => file,
            };
        }

        var weights = request.Weights ?? checkpoint!;
        if (Directory.Exists(weights))
        {
            throw new FileNotFoundException($"'{weights}' is a folder, not a weights file (give a run folder with --run).", weights);
        }

        return File.Exists(weights) ? (options, weights) : throw new FileNotFoundException($"'{weights}' does not exist.", weights);
    }

    public static (CheckpointSummary? Summary, bool BackboneOnly) LoadWeights(MultiBranchModule model, BackboneClassifier backbone, string weights, ExperimentConfig options)
    {
        var what = $"{options.ClassifierType} ({SampleData.Describe(options).Classes} classes, width {options.BaseWidth})";
        var checkpoint = weights.EndsWith(".ckpt", StringComparison.OrdinalIgnoreCase);

        // First whether the file can be read at all, then whether it fits the model: two different things to fix.
        HashSet<string> names;
        try
        {
            names = checkpoint ? new HashSet<string>() : PyTorchWeights.Describe(weights).Keys.ToHashSet(StringComparer.Ordinal);
            _ = checkpoint ? TrainerCheckpoint.ReadSummary(weights) : null;
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"'{weights}' cannot be read as {(checkpoint ? "a DTSKD.Core checkpoint" : "PyTorch weights (.pt/.pth/.bin from torch.save, or .safetensors)")}: {Detail(ex, weights)}", ex);
        }

        try
        {
            if (checkpoint)
            {
                return (TrainerCheckpoint.LoadModel(weights, model), false);
            }

            // A state dict: the whole multi-branch model, or the plain classifier that export wrote.
            var backboneNames = backbone.state_dict().Keys.ToHashSet(StringComparer.Ordinal);
            var onlyBackbone = names.IsSubsetOf(backboneNames) && names.Count > 0;
            PyTorchWeights.Load(onlyBackbone ? backbone : model, weights);
            return (null, onlyBackbone);
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"'{weights}' does not fit {what}: {Detail(ex, weights)}", ex);
        }
    }

    /// <summary>An error's message without the file name the caller's message already gives.</summary>
    private static string Detail(Exception ex, string file) =>
        ex.Message.Replace($"Checkpoint '{file}' ", string.Empty, StringComparison.Ordinal).Replace($"'{file}' ", string.Empty, StringComparison.Ordinal);
}
