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

    /// <summary>export: the file to write, without extension (default: &lt;run&gt;/backbone); both .pt and .safetensors are written.</summary>
    public string? Output { get; init; }

    /// <summary>predict: the image files.</summary>
    public IReadOnlyList<string> Images { get; init; } = [];

    /// <summary>predict: how many classes to show per image.</summary>
    public int Top { get; init; } = 5;

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
        commands.Define(root, "export", "Exports the plain classifier a run contains (backbone and its head, no neck or branches) as .pt and .safetensors state dicts.");
        commands.Define(root, "predict", "Classifies image files (PNG, JPEG) with a trained run, an exported backbone or PyTorch weights.");
        return commands;
    }

    public (ToolRequest? Request, string? Error) Read(ParseResult result)
    {
        var request = _readers[result.CommandResult.Command](result);
        if (request.Run is null && request.Weights is null)
        {
            return (null, $"{request.Command} needs a trained run (--run <folder>) or weights (--weights <file>).");
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

        var output = new Option<string?>("--output") { Description = "The file to write, without extension (default: <run>/backbone); .pt and .safetensors are written." };
        var images = new Argument<string[]>("images") { Description = "Image files (PNG or JPEG).", Arity = ArgumentArity.OneOrMore };
        var top = SampleCommandLine.Positive(new Option<int>("--top") { Description = "How many classes to show per image.", DefaultValueFactory = _ => 5 });
        var precision = new Option<string>("--precision")
        {
            Description = "The number format to evaluate in: run (the one the run trained and evaluated in, so its own figures come back), fp32, bf16 or fp16.",
            DefaultValueFactory = _ => "run",
        };
        precision.AcceptOnlyFromAmong("run", "fp32", "bf16", "fp16");
        switch (name)
        {
            case "evaluate":
                command.Add(precision);
                break;
            case "export":
                command.Add(output);
                break;
            case "predict":
                command.Add(images);
                command.Add(top);
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
            Images = name == "predict" ? result.GetValue(images) ?? [] : [],
            Top = name == "predict" ? result.GetValue(top) : 5,
            Precision = name == "evaluate" ? result.GetValue(precision)! : "run",
            Options = shared.Read(result, new ExperimentConfig()),
        };
    }
}
