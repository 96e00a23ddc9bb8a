using System.Globalization;

namespace DTSKD.Samples.Cifar100;

/// <summary>Every option of a training run, as given on the command line (written to config.json).</summary>
public sealed record ExperimentConfig
{
    /// <summary>The recipe's number of epochs; a run of another length says so in its default folder name.</summary>
    public const int RecipeEpochs = 300;

    public double Lr { get; init; } = 0.1;
    public int[] LrDecaySchedule { get; init; } = [150, 225];
    public double LrDecayRate { get; init; } = 0.1;
    public double WeightDecay { get; init; } = 5e-4;
    public double Momentum { get; init; } = 0.9;
    public int Epochs { get; init; } = RecipeEpochs;
    public int BatchSize { get; init; } = 128;
    public int EvalBatchSize { get; init; } = 500;
    public bool Hskd { get; init; } = true;
    public double BackboneWeight { get; init; } = 3.0;
    public double B1Weight { get; init; } = 1.0;
    public double B2Weight { get; init; } = 1.0;
    public double B3Weight { get; init; } = 1.0;
    public double CeWeight { get; init; } = 0.2;
    public double KdWeight { get; init; } = 0.8;
    public double Temperature { get; init; } = 4.0;
    public string CoeffDecay { get; init; } = "cos";
    public double CosMax { get; init; } = 0.9;
    public double CosMin { get; init; }
    public double AlphaT { get; init; } = 0.8;
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
    public long Seed { get; init; } = 27;
    public string Device { get; init; } = "auto";
    public string Precision { get; init; } = "auto";
    public bool Tf32 { get; init; } = true;
    public int Threads { get; init; } = Environment.ProcessorCount;
    public int BaseWidth { get; init; } = 64;
    public int? NeckWidth { get; init; }
    public int? TrainLimit { get; init; }
    public int? TestLimit { get; init; }

    /// <summary>The best top-1 is taken over the epochs after this many; null for two thirds of the run (200 of 300, as the release).</summary>
    public int? BestAfter { get; init; }

    public int LogInterval { get; init; } = 50;

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

    /// <summary>The device the run actually used (written by the sample, not an option).</summary>
    public string? DeviceUsed { get; init; }

    /// <summary>The number format the run actually used (written by the sample, not an option).</summary>
    public string? PrecisionUsed { get; init; }

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
    public int ResolvedBestAfter => BestAfter ?? (Epochs * 2 / 3);

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
            if (Epochs != RecipeEpochs)
            {
                parts.Add($"e{Epochs}");
            }

            if (BaseWidth != 64 || NeckWidth is not null)
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
