using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using DTSKD.Core;

namespace DTSKD.Benchmarks.Study;

/// <summary>
/// Everything that decides a study's results, plus its title and the command that made it; written as <c>study.json</c>
/// into the runs folder by every shard, so shards of different studies never share a folder and <c>merge</c> needs only
/// the folder.
/// </summary>
public sealed record StudySettings
{
    public required string DataType { get; init; }
    public string? DataPath { get; init; }
    public int? ImageSize { get; init; }
    public int Channels { get; init; } = 3;
    public required int Epochs { get; init; }
    public int? TrainLimit { get; init; }
    public int? TestLimit { get; init; }
    public required int BatchSize { get; init; }
    public required double Lr { get; init; }
    public required string Model { get; init; }
    public required int BaseWidth { get; init; }
    public required int NeckWidth { get; init; }
    public required string Precision { get; init; }
    public double LabelNoise { get; init; }
    public long LabelNoiseSeed { get; init; } = 1;
    public required string[] Rows { get; init; }
    public required long[] Seeds { get; init; }
    public required string Device { get; init; }

    // The fine-tuning settings are written only when set, so the fingerprints of studies from random weights stay as they were.

    /// <summary>The pretrained network every run starts from (torchvision .pth/.safetensors or .onnx), as an absolute path; null for random weights.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public string? Pretrained { get; init; }

    /// <summary>An ONNX network's branch points; null for its default.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public string[]? BranchPoints { get; init; }

    /// <summary>The last frozen stage (none, stem, stage1...).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public string? Freeze { get; init; }

    /// <summary>Whether the pretrained batch norms keep their statistics.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool FreezeBn { get; init; }

    /// <summary>Whether the branches read the backbone detached (MultiBranchModule.BranchesDetached): no branch term trains the backbone.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool DetachBranches { get; init; }

    /// <summary>The pretrained parameters' learning-rate factor.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public double? BackboneLrFactor { get; init; }

    /// <summary>The warm-up epochs.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int? WarmupEpochs { get; init; }

    /// <summary>The stem of a network from random weights, where it is not the release's CIFAR stem.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public string? Stem { get; init; }

    /// <summary>The weight decay, where it is not the recipe's (the fine-tuning recipe's 1e-4).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public double? WeightDecay { get; init; }

    /// <summary>The report's title (not part of <see cref="Fingerprint"/>).</summary>
    public string Title { get; init; } = "What each teacher buys";

    /// <summary>The command line, without the shard arguments (not part of <see cref="Fingerprint"/>).</summary>
    public string Command { get; init; } = "";

    internal static JsonSerializerOptions Json { get; } = new() { WriteIndented = true };

    /// <summary>The objectives of <see cref="Rows"/>.</summary>
    [JsonIgnore]
    public IReadOnlyList<ObjectiveSpec> Objectives => [.. Rows.Select(ObjectiveSpec.Parse)];

    /// <summary>Every run of the study in order: rows outer, seeds inner.</summary>
    [JsonIgnore]
    public IReadOnlyList<(ObjectiveSpec Row, long Seed)> Runs => [.. Objectives.SelectMany(row => Seeds.Select(seed => (row, seed)))];

    /// <summary>A hash of what decides the results: a run file from another study is never taken for one of this study's.</summary>
    [JsonIgnore]
    public string Fingerprint
    {
        get
        {
            var decisive = this with { Title = "", Command = "" };
            return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(decisive, Json))))[..16].ToLowerInvariant();
        }
    }

    /// <summary>Writes <c>study.json</c> into the runs folder, or checks that the one there is this study's.</summary>
    /// <exception cref="InvalidOperationException">The folder holds another study.</exception>
    public void Claim(string runsFolder)
    {
        Directory.CreateDirectory(runsFolder);
        var path = Path.Combine(runsFolder, "study.json");
        if (File.Exists(path))
        {
            var existing = Read(runsFolder);
            if (existing.Fingerprint != Fingerprint)
            {
                throw new InvalidOperationException(
                    $"'{runsFolder}' holds the runs of another study (study.json differs in its data, budget, rows or seeds); use another --runs-dir, or empty this one.");
            }

            return;
        }

        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(this, Json));
    }

    /// <summary>Reads a runs folder's <c>study.json</c>.</summary>
    public static StudySettings Read(string runsFolder)
    {
        var path = Path.Combine(runsFolder, "study.json");
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"'{runsFolder}' holds no study.json: it is not the --runs-dir of an ablation.", path);
        }

        try
        {
            return JsonSerializer.Deserialize<StudySettings>(File.ReadAllText(path), Json)
                ?? throw new InvalidDataException($"'{path}' is empty.");
        }
        catch (JsonException)
        {
            throw new InvalidDataException($"'{path}' is not a whole study record (cut short or not JSON): it is written when a study starts; start the study again with the same options and --runs-dir (its finished runs are kept), or delete the runs folder to start afresh.");
        }
    }
}
