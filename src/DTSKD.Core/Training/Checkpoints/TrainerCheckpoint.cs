using System.Text;
using System.Text.Json;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// The trainer's checkpoint files (<c>last.ckpt</c>, <c>best.ckpt</c>): the whole state of a training run (the model in
/// float32, the optimizer, the objective, the precision state, the run's position and metrics), checked by SHA-256.
/// <see cref="Trainer.LoadCheckpoint"/> resumes a run from one; <see cref="LoadModel"/> takes only the model's weights,
/// to evaluate or export them.
/// </summary>
/// <remarks>
/// The model is stored in float32 whatever the training precision (a half-precision run stores its float32 master
/// weights, of which its half weights are the rounding), so any checkpoint loads into a model built in the usual way.
/// </remarks>
public static class TrainerCheckpoint
{
    private static readonly string[] Sections = ["model", "optimizer", "objective", "precision"];

    /// <summary>What a checkpoint holds state for; the header describes the rest.</summary>
    internal sealed record Parts(IMultiBranchModel Model, optim.Optimizer Optimizer, IMultiBranchObjective Objective, PrecisionPolicy Precision)
    {
        /// <summary>The rank whose objective state a restore reads (0 for one process).</summary>
        public int Rank { get; init; }

        /// <summary>With several ranks, every rank's objective state, written as sections of their own; null for one process.</summary>
        public IReadOnlyList<byte[]>? RankObjectives { get; init; }
    }

    internal static void Write(string path, CheckpointHeader header, Parts parts)
    {
        var ranks = parts.RankObjectives ?? [];
        List<(string, Action<Stream>)> sections =
        [
            ("model", s => WriteModel(parts.Precision.CheckpointState(parts.Model), s)),
            ("optimizer", s => WriteOptimizer(parts.Optimizer, s)),
            ("objective", ranks.Count > 0 ? s => s.Write(ranks[0]) : parts.Objective.SaveState),
            ("precision", s =>
            {
                using var w = new BinaryWriter(s, Encoding.UTF8, leaveOpen: true);
                parts.Precision.Save(w);
            }),
        ];
        for (var rank = 1; rank < ranks.Count; rank++)
        {
            var bytes = ranks[rank];
            sections.Add((RankStates.ObjectiveSection(rank), s => s.Write(bytes)));
        }

        CheckpointFile.Write(path, JsonSerializer.Serialize(header), [.. sections]);
    }

    /// <summary>
    /// Copies the model weights (parameters and BatchNorm statistics) of a checkpoint into a model of the same architecture
    /// and size; nothing else of the run is touched. Checkpoints of every training precision load, into a float32 model
    /// or any other. Nothing is changed unless the checkpoint is intact and matches.
    /// </summary>
    /// <param name="path">A checkpoint written by the trainer.</param>
    /// <param name="model">A model built like the one that was trained (same network, classes, channels and widths).</param>
    /// <returns>What the checkpoint says about its run: its epochs' metrics, how many epochs it completed, its precision.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not an intact checkpoint, or its model differs from <paramref name="model"/>; the message says how.</exception>
    public static CheckpointSummary LoadModel(string path, IMultiBranchModel model)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(model);
        var file = CheckpointFile.Open(path);
        var header = ParseHeader(path, file.HeaderJson);
        var live = model.state_dict();
        CheckModel(path, header.ModelState, Describe(live), compareTypes: false);
        var loaded = ReadModel(file, live);
        try
        {
            CopyInto(live, loaded);
        }
        finally
        {
            DisposeAll(loaded);
        }

        return Summary(header);
    }

    /// <summary>Reads what a checkpoint says about its run, after verifying the whole file, without a model.</summary>
    /// <param name="path">A checkpoint written by the trainer.</param>
    /// <returns>Its epochs' metrics, how many epochs it completed, its objective and precision.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not an intact DTSKD.Core checkpoint; the message says why.</exception>
    public static CheckpointSummary ReadSummary(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var file = CheckpointFile.Open(path);
        return Summary(ParseHeader(path, file.HeaderJson));
    }

    private static CheckpointSummary Summary(CheckpointHeader header)
    {
        var precision = Enum.TryParse<TrainingPrecision>(header.Precision, out var p) ? p : TrainingPrecision.Float32;
        return new CheckpointSummary(header.NextEpoch, header.NextStep, header.Metrics, header.Objective, precision, header.DataKey);
    }

    /// <summary>Describes a model state for a header: every tensor's name, dtype and shape.</summary>
    internal static Dictionary<string, string> Describe(Dictionary<string, Tensor> state) =>
        state.ToDictionary(kv => kv.Key, kv => $"{kv.Value.dtype}[{string.Join(",", kv.Value.shape)}]");

    /// <summary>Checks a checkpoint with <paramref name="check"/> and, if it passes, restores every part.</summary>
    /// <param name="path">The checkpoint.</param>
    /// <param name="parts">The live run's parts, restored from the checkpoint.</param>
    /// <param name="check">The run's resume rules, given the file's format version and header; throws to refuse.</param>
    /// <returns>The checkpoint's header (position, metrics, best).</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is corrupted or does not match; nothing was changed.</exception>
    internal static CheckpointHeader Restore(string path, Parts parts, Action<int, CheckpointHeader> check)
    {
        var file = CheckpointFile.Open(path);
        var header = ParseHeader(path, file.HeaderJson);
        foreach (var name in Sections.Where(n => !file.Has(n)))
        {
            throw new InvalidDataException($"Checkpoint '{path}' has no '{name}' section.");
        }

        check(file.Version, header);
        var objectiveSection = RankStates.ObjectiveSection(parts.Rank);
        if (!file.Has(objectiveSection))
        {
            throw new InvalidDataException($"Checkpoint '{path}' has no '{objectiveSection}' section.");
        }

        // Everything is validated: read the model tensors into temporaries, then apply all parts, optimizer first so
        // that its snapshot can undo it if a later part fails.
        var live = parts.Precision.CheckpointState(parts.Model);
        var loaded = ReadModel(file, live);
        using var snapshot = new MemoryStream();
        WriteOptimizer(parts.Optimizer, snapshot);
        try
        {
            try
            {
                using (var optimizer = file.OpenSection("optimizer"))
                {
                    ReadOptimizer(parts.Optimizer, optimizer);
                }

                using (var objective = file.OpenSection(objectiveSection))
                {
                    parts.Objective.LoadState(objective);
                }

                using var precision = new BinaryReader(file.OpenSection("precision"), Encoding.UTF8);
                parts.Precision.Load(precision);
            }
            catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or ArgumentException)
            {
                snapshot.Position = 0;
                ReadOptimizer(parts.Optimizer, snapshot);
                throw new InvalidDataException($"Checkpoint '{path}' does not match this trainer: {ex.Message}", ex);
            }

            CopyInto(live, loaded);
            parts.Precision.CheckpointStateLoaded();
        }
        finally
        {
            DisposeAll(loaded);
        }

        return header;
    }

    private static CheckpointHeader ParseHeader(string path, string json)
    {
        try
        {
            return JsonSerializer.Deserialize<CheckpointHeader>(json) ?? throw new InvalidDataException($"Checkpoint '{path}' has an empty header.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"Checkpoint '{path}' has an unreadable header: {ex.Message}", ex);
        }
    }

    /// <summary>Compares names and shapes, and with <paramref name="compareTypes"/> dtypes too (a resumed run continues in its own formats).</summary>
    internal static void CheckModel(string path, Dictionary<string, string> saved, Dictionary<string, string> live, bool compareTypes)
    {
        static string ShapeOf(string description) => description[description.IndexOf('[', StringComparison.Ordinal)..];
        var problems = live.Keys.Except(saved.Keys).Select(k => $"missing {k}")
            .Concat(saved.Keys.Except(live.Keys).Select(k => $"unexpected {k}"))
            .Concat(live.Keys.Intersect(saved.Keys)
                .Where(k => compareTypes ? live[k] != saved[k] : ShapeOf(live[k]) != ShapeOf(saved[k]))
                .Select(k => $"{k}: checkpoint {saved[k]}, model {live[k]}"))
            .ToList();
        if (problems.Count > 0)
        {
            throw new InvalidDataException(
                $"Checkpoint '{path}' does not match this model ({problems.Count} differences): {string.Join("; ", problems.Take(10))}.");
        }
    }

    private static void WriteModel(Dictionary<string, Tensor> state, Stream stream)
    {
        using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        writer.Write(state.Count);
        foreach (var (name, tensor) in state)
        {
            writer.Write(name);
            TensorIO.Write(writer, tensor);
        }
    }

    private static void CopyInto(Dictionary<string, Tensor> live, Dictionary<string, Tensor> loaded)
    {
        using var noGrad = no_grad();
        foreach (var (name, tensor) in loaded)
        {
            var target = live[name];
            if (tensor.dtype == target.dtype)
            {
                target.copy_(tensor);
            }
            else
            {
                using var converted = tensor.to(target.dtype);
                target.copy_(converted);
            }
        }
    }

    private static void DisposeAll(Dictionary<string, Tensor> loaded)
    {
        foreach (var tensor in loaded.Values)
        {
            tensor.Dispose();
        }
    }

    /// <summary>Reads the model section into CPU temporaries (the caller disposes them), checked against the live shapes.</summary>
    private static Dictionary<string, Tensor> ReadModel(CheckpointFile.Reader file, Dictionary<string, Tensor> live)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            using var reader = new BinaryReader(file.OpenSection("model"), Encoding.UTF8);
            var count = reader.ReadInt32();
            for (var i = 0; i < count; i++)
            {
                var name = reader.ReadString();
                var tensor = TensorIO.ReadNew(reader, $"model tensor '{name}'");
                result[name] = tensor;
                if (!live.TryGetValue(name, out var target) || !tensor.shape.SequenceEqual(target.shape))
                {
                    throw new InvalidDataException($"its tensor '{name}' does not match the model");
                }
            }

            if (result.Count != live.Count)
            {
                throw new InvalidDataException($"it holds {result.Count} tensors; the model has {live.Count}");
            }

            return result;
        }
        catch (Exception ex) when (ex is EndOfStreamException or ArgumentException or InvalidDataException)
        {
            DisposeAll(result);
            throw new InvalidDataException($"Checkpoint '{file.Path}': the model section does not match its header: {ex.Message}", ex);
        }
    }

    private static void WriteOptimizer(optim.Optimizer optimizer, Stream stream)
    {
        using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        if (optimizer is not OptimizerHelper helper)
        {
            throw new NotSupportedException($"The optimizer {optimizer.GetType().Name} cannot save its state.");
        }

        helper.save_state_dict(writer);
    }

    private static void ReadOptimizer(optim.Optimizer optimizer, Stream stream)
    {
        try
        {
            using var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
            ((OptimizerHelper)optimizer).load_state_dict(reader);
        }
        catch (Exception ex) when (ex is EndOfStreamException or ArgumentException or KeyNotFoundException or InvalidCastException)
        {
            throw new InvalidDataException("The checkpoint's optimizer state does not match this optimizer: " + ex.Message, ex);
        }
    }
}
