namespace DTSKD.Samples.Cifar100;

/// <summary>Every option of a run, as given on the command line (written to config.json).</summary>
public sealed record ExperimentConfig
{
    public double Lr { get; init; } = 0.1;
    public int[] LrDecaySchedule { get; init; } = [150, 225];
    public double LrDecayRate { get; init; } = 0.1;
    public double WeightDecay { get; init; } = 5e-4;
    public double Momentum { get; init; } = 0.9;
    public int Epochs { get; init; } = 300;
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
    public long Seed { get; init; } = 27;
    public string Device { get; init; } = "auto";
    public string Precision { get; init; } = "auto";
    public bool Tf32 { get; init; } = true;
    public int BaseWidth { get; init; } = 64;
    public int NeckWidth { get; init; } = 512;
    public int? TrainLimit { get; init; }
    public int? TestLimit { get; init; }
    public int BestAfter { get; init; } = 200;
    public int LogInterval { get; init; } = 50;

    /// <summary>The data folder: the option, else the data type's usual place.</summary>
    public string ResolvedDataPath => DataPath ?? (DataType == "fashion-mnist" ? "/usr/share/datasets/fashion-mnist" : "data");

    /// <summary>The run's name: the option, else model-data-seed.</summary>
    public string ResolvedName => ExperimentsName ?? $"{ClassifierType}-{DataType}-seed{Seed}";

    /// <summary>The run's output folder.</summary>
    public string RunDirectory => Path.Combine(ExperimentsDir, ResolvedName);
}
