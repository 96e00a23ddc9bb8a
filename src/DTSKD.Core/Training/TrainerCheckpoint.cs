using System.Text;
using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// The trainer's checkpoint files (<c>last.ckpt</c>, <c>best.ckpt</c>): the whole state of a training run (model, optimizer,
/// objective, precision state, the run's position and metrics), checked by SHA-256. <see cref="Trainer.LoadCheckpoint"/>
/// resumes a run from one; <see cref="LoadModel"/> takes only the model's weights, to evaluate or export them.
/// </summary>
public static class TrainerCheckpoint
{
    private static readonly string[] Sections = ["model", "optimizer", "objective", "precision"];

    /// <summary>What a checkpoint holds state for; the header describes the rest.</summary>
    internal sealed record Parts(IMultiBranchModel Model, optim.Optimizer Optimizer, IMultiBranchObjective Objective, PrecisionPolicy Precision);

    internal static void Write(string path, CheckpointHeader header, Parts parts) =>
        CheckpointFile.Write(path, JsonSerializer.Serialize(header), [
            ("model", s => WriteModel(parts.Model, s)),
            ("optimizer", s => WriteOptimizer(parts.Optimizer, s)),
            ("objective", parts.Objective.SaveState),
            ("precision", s =>
            {
                using var w = new BinaryWriter(s, Encoding.UTF8, leaveOpen: true);
                parts.Precision.Save(w);
            }),
        ]);

    /// <summary>
    /// Copies the model weights (parameters and BatchNorm statistics) of a checkpoint into a model of the same architecture
    /// and size; nothing else of the run is touched. Nothing is changed unless the checkpoint is intact and matches.
    /// </summary>
    /// <param name="path">A checkpoint written by the trainer.</param>
    /// <param name="model">A model built like the one that was trained (same network, classes, channels and widths).</param>
    /// <returns>What the checkpoint says about its run: its epochs' metrics and how many epochs it completed.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is corrupted, or its model differs from <paramref name="model"/>; the message says how.</exception>
    public static CheckpointSummary LoadModel(string path, IMultiBranchModel model)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(model);
        var (json, sections) = CheckpointFile.Read(path);
        var header = ParseHeader(path, json);
        CheckModel(path, header.ModelState, DescribeModel(model));
        if (!sections.TryGetValue("model", out var section))
        {
            throw new InvalidDataException($"Checkpoint '{path}' has no 'model' section.");
        }

        var live = model.state_dict();
        var loaded = ReadModel(section, live);
        try
        {
            CopyInto(live, loaded);
        }
        finally
        {
            DisposeAll(loaded);
        }

        return new CheckpointSummary(header.NextEpoch, header.NextStep, header.Metrics, header.Objective);
    }

    /// <summary>Describes the live model's state for a header: every tensor's name, dtype and shape.</summary>
    internal static Dictionary<string, string> DescribeModel(IMultiBranchModel model) =>
        model.state_dict().ToDictionary(kv => kv.Key, kv => $"{kv.Value.dtype}[{string.Join(",", kv.Value.shape)}]");

    /// <summary>Checks a checkpoint against the live run (<paramref name="expected"/>) and, if it matches, restores every part.</summary>
    /// <returns>The checkpoint's header (position, metrics, best).</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is corrupted or does not match; nothing was changed.</exception>
    internal static CheckpointHeader Restore(string path, CheckpointHeader expected, Parts parts)
    {
        var (json, sections) = CheckpointFile.Read(path);
        var header = ParseHeader(path, json);
        Check(path, header, expected, sections);

        // Everything is validated: read the model tensors into temporaries, then apply all parts, optimizer first so
        // that its snapshot can undo it if a later part fails.
        var live = parts.Model.state_dict();
        var loaded = ReadModel(sections["model"], live);
        using var snapshot = new MemoryStream();
        WriteOptimizer(parts.Optimizer, snapshot);
        try
        {
            try
            {
                ReadOptimizer(parts.Optimizer, sections["optimizer"]);
                using (var objective = new MemoryStream(sections["objective"]))
                {
                    parts.Objective.LoadState(objective);
                }

                using var precision = new BinaryReader(new MemoryStream(sections["precision"]), Encoding.UTF8);
                parts.Precision.Load(precision);
            }
            catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or ArgumentException)
            {
                ReadOptimizer(parts.Optimizer, snapshot.ToArray());
                throw new InvalidDataException($"Checkpoint '{path}' does not match this trainer: {ex.Message}", ex);
            }

            CopyInto(live, loaded);
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

    private static void CheckModel(string path, Dictionary<string, string> saved, Dictionary<string, string> live)
    {
        var problems = live.Keys.Except(saved.Keys).Select(k => $"missing {k}")
            .Concat(saved.Keys.Except(live.Keys).Select(k => $"unexpected {k}"))
            .Concat(live.Keys.Intersect(saved.Keys).Where(k => live[k] != saved[k]).Select(k => $"{k}: checkpoint {saved[k]}, model {live[k]}"))
            .ToList();
        if (problems.Count > 0)
        {
            throw new InvalidDataException(
                $"Checkpoint '{path}' does not match this model ({problems.Count} differences): {string.Join("; ", problems.Take(10))}.");
        }
    }

    private static void Check(string path, CheckpointHeader header, CheckpointHeader expected, Dictionary<string, byte[]> sections)
    {
        foreach (var name in Sections.Where(n => !sections.ContainsKey(n)))
        {
            throw new InvalidDataException($"Checkpoint '{path}' has no '{name}' section.");
        }

        CheckModel(path, header.ModelState, expected.ModelState);

        if (header.Objective != expected.Objective)
        {
            throw new InvalidDataException($"Checkpoint '{path}' was written with objective '{header.Objective}', this trainer uses '{expected.Objective}'.");
        }

        if (header.Optimizer != expected.Optimizer || header.Precision != expected.Precision)
        {
            throw new InvalidDataException(
                $"Checkpoint '{path}' was written with optimizer {header.Optimizer} in {header.Precision} precision; this trainer uses {expected.Optimizer} in {expected.Precision}.");
        }

        if (header.TrainCount != expected.TrainCount || header.TestCount != expected.TestCount)
        {
            throw new InvalidDataException(
                $"Checkpoint '{path}' was written for {header.TrainCount} training and {header.TestCount} test samples; this trainer has {expected.TrainCount} and {expected.TestCount}.");
        }

        if (header.NextStep > 0 && header.Options.BatchSize != expected.Options.BatchSize)
        {
            throw new InvalidDataException(
                $"Checkpoint '{path}' stopped inside an epoch with batch size {header.Options.BatchSize}; resume it with the same batch size (this trainer has {expected.Options.BatchSize}).");
        }
    }

    private static void WriteModel(IMultiBranchModel model, Stream stream)
    {
        using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        var state = model.state_dict();
        writer.Write(state.Count);
        foreach (var (name, tensor) in state)
        {
            writer.Write(name);
            tensor.Save(writer);
        }
    }

    private static void CopyInto(Dictionary<string, Tensor> live, Dictionary<string, Tensor> loaded)
    {
        using var noGrad = no_grad();
        foreach (var (name, tensor) in loaded)
        {
            live[name].copy_(tensor);
        }
    }

    private static void DisposeAll(Dictionary<string, Tensor> loaded)
    {
        foreach (var tensor in loaded.Values)
        {
            tensor.Dispose();
        }
    }

    private static Dictionary<string, Tensor> ReadModel(byte[] section, Dictionary<string, Tensor> live)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            using var reader = new BinaryReader(new MemoryStream(section), Encoding.UTF8);
            var count = reader.ReadInt32();
            for (var i = 0; i < count; i++)
            {
                var name = reader.ReadString();
                var tensor = zeros_like(live[name], device: CPU).DetachFromDisposeScope();
                result[name] = tensor;
                tensor.Load(reader);
            }

            return result;
        }
        catch (Exception ex) when (ex is EndOfStreamException or ArgumentException or KeyNotFoundException)
        {
            foreach (var tensor in result.Values)
            {
                tensor.Dispose();
            }

            throw new InvalidDataException("The checkpoint's model section does not match its header: " + ex.Message, ex);
        }
    }

    private static void WriteOptimizer(optim.Optimizer optimizer, Stream stream)
    {
        using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        switch (optimizer)
        {
            case FlatSgd flat:
                flat.Save(writer);
                break;
            case OptimizerHelper helper:
                helper.save_state_dict(writer);
                break;
            default:
                throw new NotSupportedException($"The optimizer {optimizer.GetType().Name} cannot save its state.");
        }
    }

    private static void ReadOptimizer(optim.Optimizer optimizer, byte[] section)
    {
        try
        {
            using var reader = new BinaryReader(new MemoryStream(section), Encoding.UTF8);
            switch (optimizer)
            {
                case FlatSgd flat:
                    flat.Load(reader);
                    break;
                case OptimizerHelper helper:
                    helper.load_state_dict(reader);
                    break;
            }
        }
        catch (Exception ex) when (ex is EndOfStreamException or ArgumentException or KeyNotFoundException or InvalidCastException)
        {
            throw new InvalidDataException("The checkpoint's optimizer state does not match this optimizer: " + ex.Message, ex);
        }
    }
}
