using System.Globalization;

namespace DTSKD.Samples.Cifar100;

/// <summary>Every option of a training run, as given on the command line (written to config.json).</summary>
public sealed record ExperimentConfig
{
    // The recipe's numbers are the library's defaults; the sample only names them after the release's flags.
    private static readonly Core.Training.TrainerOptions Trainer = new();
    private static readonly Core.DualTeacherLossOptions Loss = new();
    private static readonly Core.Models.MultiBranchModelOptions Model = new();

    /// <summary>The recipe's number of epochs; a run of another length says so in its default folder name.</summary>
    public static int RecipeEpochs => Trainer.Epochs;

    public double Lr { get; init; } = Trainer.LearningRate;
    public int[] LrDecaySchedule { get; init; } = [.. Trainer.Milestones];
    public double LrDecayRate { get; init; } = Trainer.Gamma;
    public double WeightDecay { get; init; } = Trainer.WeightDecay;
    public double Momentum { get; init; } = Trainer.Momentum;
    public int Epochs { get; init; } = Trainer.Epochs;
    public int BatchSize { get; init; } = Trainer.BatchSize;
    public int EvalBatchSize { get; init; } = Trainer.EvalBatchSize;

    /// <summary>The objective by name (<see cref="Core.ObjectiveSpec"/>); the release's loss flags below fill in the DTSKD options it starts from.</summary>
    public string Objective { get; init; } = Core.ObjectiveSpec.Recipe;
    public bool Hskd { get; init; } = Loss.UseHistoricalTeacher;
    public double BackboneWeight { get; init; } = Loss.BackboneWeight;
    public double B1Weight { get; init; } = Core.DualTeacherLossOptions.RecipeBranchWeight;
    public double B2Weight { get; init; } = Core.DualTeacherLossOptions.RecipeBranchWeight;
    public double B3Weight { get; init; } = Core.DualTeacherLossOptions.RecipeBranchWeight;
    public double CeWeight { get; init; } = Loss.HistoricalWeight;
    public double KdWeight { get; init; } = Loss.StructuralWeight;
    public double Temperature { get; init; } = Loss.Temperature;
    public string CoeffDecay { get; init; } = "cos";
    public double CosMax { get; init; } = Core.CoefficientSchedule.RecipeCosineMax;
    public double CosMin { get; init; } = Core.CoefficientSchedule.RecipeCosineMin;
    public double AlphaT { get; init; } = Core.CoefficientSchedule.ReleaseLinearAlphaT;

    /// <summary>--teachers-from-epoch: before it, hard labels alone (a cross-entropy warm-up); 0 for the teachers from the start.</summary>
    public int TeachersFromEpoch { get; init; }

    /// <summary>--detach-branches: no teacher term sends a gradient into the backbone (detached neck inputs, detached KD target).</summary>
    public bool DetachBranches { get; init; }
    public string ClassifierType { get; init; } = "resnet18_dtskd";
    public string DataType { get; init; } = "cifar100";
    public string? DataPath { get; init; }
    public bool Download { get; init; } = true;
    public string ExperimentsDir { get; init; } = "experiments";
    public string? ExperimentsName { get; init; }
    public bool Resume { get; init; }

    /// <summary>The run folder <c>--resume</c> named, if it named one.</summary>
    public string? ResumeFrom { get; init; }
    public bool Overwrite { get; init; }
    public long Seed { get; init; } = Trainer.Seed;
    public string Device { get; init; } = "auto";
    public string Precision { get; init; } = "auto";
    public bool Tf32 { get; init; } = true;
    public int Threads { get; init; } = Environment.ProcessorCount;
    public int BaseWidth { get; init; } = Model.BaseWidth;
    public int? NeckWidth { get; init; }
    public int? TrainLimit { get; init; }
    public int? TestLimit { get; init; }

    /// <summary>The best top-1 is taken over the epochs after this many; null for two thirds of the run (200 of 300, as the release).</summary>
    public int? BestAfter { get; init; }

    public int LogInterval { get; init; } = Trainer.LogInterval;

    /// <summary>--data-type folder: the side of the square images the model sees (default 32).</summary>
    public int? ImageSize { get; init; }

    /// <summary>--data-type folder: 3 for RGB, 1 for grayscale.</summary>
    public int Channels { get; init; } = 3;

    /// <summary>--data-type folder: auto, cached or streaming.</summary>
    public string ImageMode { get; init; } = "auto";

    /// <summary>--data-type folder: where the decoded-image cache goes (default ~/.cache/dtskd/images).</summary>
    public string? ImageCache { get; init; }

    /// <summary>--data-type folder: leave unusable images out (listed in skipped-images.txt) instead of refusing the folder.</summary>
    public bool SkipBadImages { get; init; }

    /// <summary>The networks' first layers: auto (the ImageNet stem from 96 pixels on), cifar or imagenet.</summary>
    public string Stem { get; init; } = "auto";

    /// <summary>The classes of a folder run, in index order (written by the sample, for evaluate and predict).</summary>
    public string[]? ClassNames { get; init; }

    /// <summary>The per-channel means a folder run normalised with (written by the sample).</summary>
    public double[]? Mean { get; init; }

    /// <summary>The per-channel standard deviations a folder run normalised with (written by the sample).</summary>
    public double[]? Std { get; init; }
    public bool TensorBoard { get; init; } = true;

    /// <summary>--tsne: after training, keep the best epoch's test-set outputs and draw their t-SNE map (the release's --tsne 1).</summary>
    public bool Tsne { get; init; }

    /// <summary>--pretrained: the torchvision weights the run starts from (an absolute path once resolved).</summary>
    public string? Pretrained { get; init; }

    /// <summary>The SHA-256 of the --pretrained file when the run started (hex): a resume or an evaluation on another file is refused.</summary>
    public string? PretrainedSha256 { get; init; }

    /// <summary>--branch-points: an ONNX network's branch points; null for its default.</summary>
    public string[]? BranchPoints { get; init; }

    /// <summary>--branches: how many branches an ONNX network's default search attaches; null for the recipe's 3.</summary>
    public int? Branches { get; init; }

    /// <summary>--freeze: the last backbone stage kept frozen (none, stem, stage1..stage4).</summary>
    public string Freeze { get; init; } = "none";

    /// <summary>--freeze-bn: every pretrained batch norm keeps its statistics.</summary>
    public bool FreezeBn { get; init; }

    /// <summary>--backbone-lr-factor: the pretrained parameters' share of the learning rate.</summary>
    public double BackboneLrFactor { get; init; } = Core.Training.FineTuning.RecipeBackboneFactor;

    /// <summary>--warmup-epochs: the linear warm-up of a fine-tuning run.</summary>
    public int WarmupEpochs { get; init; } = Core.Training.FineTuning.RecipeWarmupEpochs;

    /// <summary>The device the run actually used (written by the sample, not an option).</summary>
    public string? DeviceUsed { get; init; }

    /// <summary>The number format the run actually used (written by the sample, not an option).</summary>
    public string? PrecisionUsed { get; init; }

    /// <summary>A folder run's data key: the hash of data-files.tsv, the files the run read (written by the sample, not an option).</summary>
    public string? DataKey { get; init; }

    /// <summary>The number of ranks the run trained with (written by the sample, not an option; null: one process).</summary>
    public int? WorldSizeUsed { get; init; }

    /// <summary>--sync-batch-norm: batch norms over every rank's images of a step (with several ranks).</summary>
    public bool SyncBatchNorm { get; init; }

    /// <summary>--rank: the rank this process must have (the launcher's decides; checked against it). Not the run's: not written.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int? Rank { get; init; }

    /// <summary>--world-size: the rank count the launcher must have started (checked against it). Not the run's: not written.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int? WorldSize { get; init; }

    /// <summary>The data folder: the option, else the data set's usual place.</summary>
    public string ResolvedDataPath => DataPath ?? (DataType == SampleData.Folder ? "." : Core.Data.StandardDatasets.DefaultPath(DataType));

    /// <summary>The side of the images the model sees: --image-size for a folder, else the data set's.</summary>
    public int ResolvedImageSize => DataType == SampleData.Folder ? ImageSize ?? 32 : Core.Data.StandardDatasets.Describe(DataType).Height;

    /// <summary>The stem: --stem, or, on auto, the ImageNet stem for images of 96 pixels and more.</summary>
    public Core.Models.ModelStem ResolvedStem => Stem switch
    {
        "imagenet" => Core.Models.ModelStem.ImageNet,
        "cifar" => Core.Models.ModelStem.Cifar,
        _ => ResolvedImageSize >= 96 ? Core.Models.ModelStem.ImageNet : Core.Models.ModelStem.Cifar,
    };

    /// <summary>The epochs after which the best top-1 is counted: the option, or two thirds of the run.</summary>
    public int ResolvedBestAfter => BestAfter ?? Core.Training.TrainerOptions.LastThirdStart(Epochs);

    /// <summary>
    /// The run's name: the option, else what makes runs different: model, data and seed, plus epochs, widths and data limits
    /// when they differ from the recipe (so a quick check never lands in the folder of a full run).
    /// </summary>
    public string ResolvedName
    {
        get
        {
            if (ExperimentsName is { } name)
            {
                return name;
            }

            var data = DataType == SampleData.Folder ? Path.GetFileName(Path.GetFullPath(ResolvedDataPath).TrimEnd(Path.DirectorySeparatorChar)) : DataType;
            var parts = new List<string> { ClassifierType, data, $"seed{Seed}" };
            if (Pretrained is not null)
            {
                parts.Insert(1, "pretrained");
            }

            if (Core.ObjectiveSpec.Parse(Objective) is { IsRecipe: false } objective)
            {
                parts.Insert(2, objective.FileName);
            }

            if (Epochs != RecipeEpochs)
            {
                parts.Add($"e{Epochs}");
            }

            if (BaseWidth != Model.BaseWidth || NeckWidth is not null)
            {
                parts.Add(NeckWidth is { } neck ? $"w{BaseWidth}x{neck}" : $"w{BaseWidth}");
            }

            if (DataType == SampleData.Folder)
            {
                parts.Add($"s{ResolvedImageSize}");
            }

            if (TrainLimit is { } train)
            {
                parts.Add($"train{train}");
            }

            if (TestLimit is { } test)
            {
                parts.Add($"test{test}");
            }

            return string.Join("-", parts.Select(p => p.ToString(CultureInfo.InvariantCulture)));
        }
    }

    /// <summary>The run's output folder.</summary>
    public string RunDirectory => Path.Combine(ExperimentsDir, ResolvedName);

    /// <summary>The model's size options: the data set's classes and channels, the widths of the command line.</summary>
    public Core.Models.MultiBranchModelOptions ModelOptions(int classCount, int inputChannels) =>
        new() { ClassCount = classCount, InputChannels = inputChannels, BaseWidth = BaseWidth, NeckWidth = NeckWidth, Stem = ResolvedStem };
}
