using System.CommandLine;

namespace DTSKD.Samples.Cifar100;

/// <summary>What <c>evaluate</c>, <c>export</c> or <c>predict</c> was asked to do.</summary>
public sealed record ToolRequest
{
    /// <summary>evaluate, export or predict.</summary>
    public required string Command { get; init; }

    /// <summary>A run folder: its config.json gives the model and the data, its checkpoints the weights.</summary>
    public string? Run { get; init; }

    /// <summary>Which of the run's checkpoints: best (default; last when there is no best), last, or a file.</summary>
    public string Checkpoint { get; init; } = "best";

    /// <summary>Weights to use instead of a run's checkpoint: a trainer checkpoint (.ckpt) or a PyTorch state dict (.pt, .pth, .safetensors).</summary>
    public string? Weights { get; init; }

    /// <summary>export: the file to write, without extension (default: &lt;run&gt;/backbone); .pt and .safetensors, or .onnx.</summary>
    public string? Output { get; init; }

    /// <summary>export: pytorch (.pt and .safetensors, the default) or onnx.</summary>
    public string Format { get; init; } = "pytorch";

    /// <summary>export --format onnx: every head an output (early exits), not only the backbone's.</summary>
    public bool AllHeads { get; init; }

    /// <summary>export --format onnx: fold BatchNorm into the convolutions.</summary>
    public bool FoldBatchNorm { get; init; }

    /// <summary>predict: an exported .onnx file to run on ONNX Runtime instead of a run or weights.</summary>
    public string? Onnx { get; init; }

    /// <summary>predict: the image files.</summary>
    public IReadOnlyList<string> Images { get; init; } = [];

    /// <summary>predict: how many classes to show per image.</summary>
    public int Top { get; init; } = 5;

    /// <summary>predict: how many images are read and classified at once (memory stays that of one batch, whatever the number of files).</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>evaluate --tsne: also keep the test set's outputs and draw their t-SNE map (into the run folder, or beside --weights).</summary>
    public bool Tsne { get; init; }

    /// <summary>evaluate: the number format, <c>run</c> (the run's own, the default), fp32, bf16 or fp16.</summary>
    public string Precision { get; init; } = "run";

    /// <summary>The model, data and machine options (from the command line; a run's config.json replaces the model and data ones).</summary>
    public ExperimentConfig Options { get; init; } = new();
}

/// <summary>The command lines of <c>evaluate</c>, <c>export</c> and <c>predict</c>.</summary>
internal sealed class AfterTrainingCommands
{
    private readonly Dictionary<Command, Func<ParseResult, ToolRequest>> _readers = [];

    public static AfterTrainingCommands Add(RootCommand root)
    {
        var commands = new AfterTrainingCommands();
        commands.Define(root, "evaluate", "Evaluates a trained run (or PyTorch weights) on the test set: top-1 of every head, the backbone's top-5 and loss.");
        commands.Define(root, "export", "Exports the plain classifier a run contains (backbone and its head, no neck or branches) as .pt and .safetensors state dicts, or as ONNX (--format onnx).");
        commands.Define(root, "predict", "Classifies image files (PNG, JPEG) with a trained run, an exported backbone, PyTorch weights, or an exported .onnx file on ONNX Runtime (--onnx).");
        return commands;
    }

    public (ToolRequest? Request, string? Error) Read(ParseResult result)
    {
        var request = _readers[result.CommandResult.Command](result);
        if (request.Command == "export" && request.Format != "onnx" && (request.AllHeads || request.FoldBatchNorm))
        {
            return (null, $"{(request.AllHeads ? "--all-heads" : "--fold-batchnorm")} applies to --format onnx only.");
        }

        if (request.Onnx is not null && (request.Run is not null || request.Weights is not null))
        {
            return (null, "predict --onnx runs the exported file alone; leave out --run and --weights.");
        }

        if (request.Run is null && request.Weights is null && request.Onnx is null)
        {
            return (null, $"{request.Command} needs a trained run (--run <folder>) or weights (--weights <file>){(request.Command == "predict" ? ", or an exported model (--onnx <file>)" : "")}.");
        }

        return (request, null);
    }

    private void Define(RootCommand root, string name, string description)
    {
        var shared = new SampleCommandLine.SharedOptions();
        var run = new Option<string?>("--run") { Description = "A run folder (as written by training): its config.json gives the model and the data, its checkpoints the weights." };
        var checkpoint = new Option<string>("--checkpoint") { Description = "Which checkpoint of the run: best (the default, or last when there is none), last, or a .ckpt file.", DefaultValueFactory = _ => "best" };
        var weights = new Option<string?>("--weights") { Description = "Weights instead of a run's checkpoint: a .ckpt, or a PyTorch state dict (.pt, .pth, .safetensors) of the whole model or of its exported backbone." };
        var command = new Command(name, description) { run, checkpoint, weights };
        foreach (var option in shared.All)
        {
            command.Add(option);
        }

        var output = new Option<string?>("--output") { Description = "The file to write, without extension (default: <run>/backbone); .pt and .safetensors are written, or .onnx with --format onnx." };
        var format = new Option<string>("--format") { Description = "pytorch (.pt and .safetensors state dicts) or onnx (for ONNX Runtime and ML.NET, no LibTorch needed).", DefaultValueFactory = _ => "pytorch" };
        format.AcceptOnlyFromAmong("pytorch", "onnx");
        var allHeads = new Option<bool>("--all-heads") { Description = "--format onnx: every head as an output (early exits), not only the backbone's." };
        var fold = new Option<bool>("--fold-batchnorm") { Description = "--format onnx: fold BatchNorm into the convolutions (fewer nodes, the same logits to float32 rounding)." };
        var onnx = new Option<string?>("--onnx") { Description = "An exported .onnx file to run on ONNX Runtime, instead of --run or --weights (its metadata gives the preprocessing)." };
        var images = new Argument<string[]>("images") { Description = "Image files (PNG, JPEG, BMP, GIF, WebP); many at once are answered a batch at a time (a file that cannot be read is named on stderr, the others still answered, exit 1); @file reads the paths from a file.", Arity = ArgumentArity.OneOrMore };
        var top = SampleCommandLine.Positive(new Option<int>("--top") { Description = "How many classes to show per image.", DefaultValueFactory = _ => 5 });
        var predictBatch = SampleCommandLine.Positive(new Option<int>("--batch-size")
        {
            Description = "How many images are read and classified at once; each batch is answered as it finishes, so memory does not grow with the number of files.",
            DefaultValueFactory = _ => 64,
        });
        var precision = new Option<string>("--precision")
        {
            Description = "The number format to evaluate in: run (the one the run trained and evaluated in, so its own figures come back), fp32, bf16 or fp16.",
            DefaultValueFactory = _ => "run",
        };
        precision.AcceptOnlyFromAmong("run", "fp32", "bf16", "fp16");
        var tsne = new Option<bool>("--tsne") { Description = "Also keep the test set's backbone logits, features and labels (tsne/test-outputs.safetensors) and draw a t-SNE map of the features (tsne/tsne.png), in the run folder or beside --weights." };
        switch (name)
        {
            case "evaluate":
                command.Add(precision);
                command.Add(tsne);
                break;
            case "export":
                command.Add(output);
                command.Add(format);
                command.Add(allHeads);
                command.Add(fold);
                break;
            case "predict":
                command.Add(images);
                command.Add(top);
                command.Add(predictBatch);
                command.Add(onnx);
                break;
        }

        root.Add(command);
        _readers[command] = result => new ToolRequest
        {
            Command = name,
            Run = result.GetValue(run),
            Checkpoint = result.GetValue(checkpoint)!,
            Weights = result.GetValue(weights),
            Output = name == "export" ? result.GetValue(output) : null,
            Format = name == "export" ? result.GetValue(format)! : "pytorch",
            AllHeads = name == "export" && result.GetValue(allHeads),
            FoldBatchNorm = name == "export" && result.GetValue(fold),
            Onnx = name == "predict" ? result.GetValue(onnx) : null,
            Images = name == "predict" ? result.GetValue(images) ?? [] : [],
            Top = name == "predict" ? result.GetValue(top) : 5,
            BatchSize = name == "predict" ? result.GetValue(predictBatch) : 64,
            Precision = name == "evaluate" ? result.GetValue(precision)! : "run",
            Tsne = name == "evaluate" && result.GetValue(tsne),
            Options = shared.Read(result, new ExperimentConfig()),
        };
    }
}
