using System.Text.Json;
using DTSKD.Core;
using DTSKD.Core.Training;

namespace DTSKD.Benchmarks.Study;

/// <summary>One finished (row, seed) run of a study, as its own file in the runs folder: what <c>merge</c> reads.</summary>
public sealed record StudyRun
{
    public required string Row { get; init; }
    public required long Seed { get; init; }

    /// <summary>The <see cref="StudySettings.Fingerprint"/> of the study the run belongs to.</summary>
    public required string Study { get; init; }
    public required IReadOnlyList<StudyEpoch> Epochs { get; init; }
    public double? BestTop1 { get; init; }

    /// <summary>Wall seconds of the run (a timing, like <see cref="StudyEpoch.TrainSeconds"/>).</summary>
    public double Seconds { get; init; }

    /// <summary>The machine the run trained on.</summary>
    public string Machine { get; init; } = "";

    /// <summary>Training and test images the run saw (absent in runs written before they were recorded).</summary>
    public int? TrainCount { get; init; }

    /// <inheritdoc cref="TrainCount"/>
    public int? TestCount { get; init; }

    /// <summary>The file of a (row, seed) run in a runs folder.</summary>
    public static string PathOf(string runsFolder, ObjectiveSpec row, long seed) => Path.Combine(runsFolder, $"{row.FileName}-seed{seed}.json");

    /// <summary>The finished run of a (row, seed), or null when there is none for this study (a file of another study, or none).</summary>
    public static StudyRun? TryRead(string runsFolder, ObjectiveSpec row, long seed, string study)
    {
        var path = PathOf(runsFolder, row, seed);
        if (!File.Exists(path))
        {
            return null;
        }

        StudyRun? run;
        try
        {
            run = JsonSerializer.Deserialize<StudyRun>(File.ReadAllText(path), StudySettings.Json);
        }
        catch (JsonException)
        {
            // Written whole or not at all by the bench: a broken one was cut short or edited elsewhere.
            throw new InvalidDataException($"'{path}' is not a whole run record (cut short or not JSON): delete it and run its shard again; the ablation retrains only the runs it lacks.");
        }

        return run is not null && run.Study == study && run.Row == row.Text && run.Seed == seed ? run : null;
    }

    /// <summary>Writes the run's file (whole or not at all: a killed shard leaves no half-written run).</summary>
    public void Write(string runsFolder, ObjectiveSpec row) =>
        AtomicFile.WriteAllText(PathOf(runsFolder, row, Seed), JsonSerializer.Serialize(this, StudySettings.Json));

    /// <summary>A run's record from the trainer's metrics.</summary>
    public static StudyRun From(ObjectiveSpec row, long seed, string study, TrainingResult result, double seconds, string machine, int trainCount, int testCount) => new()
    {
        TrainCount = trainCount,
        TestCount = testCount,
        Row = row.Text,
        Seed = seed,
        Study = study,
        BestTop1 = result.BestTop1,
        Seconds = seconds,
        Machine = machine,
        Epochs = [.. result.Metrics.Select(m => new StudyEpoch(m.Epoch, m.LearningRate, m.TrainLoss, m.TrainTop1, [.. m.TestTop1], m.TestTop5, m.TrainSeconds))],
    };
}

/// <summary>One epoch of a study run.</summary>
public sealed record StudyEpoch(int Epoch, double LearningRate, double TrainLoss, double TrainTop1, IReadOnlyList<double> TestTop1, double TestTop5, double TrainSeconds);
