using System.Text;
using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// Writes and restores the whole state of a training run (model, optimizer, objective, precision state and the run's
/// position and metrics) through <see cref="CheckpointFile"/>. A restore checks everything first and changes nothing
/// unless all of it applies.
/// </summary>
internal static class TrainerCheckpoint
{
    private static readonly string[] Sections = ["model", "optimizer", "objective", "precision"];

    /// <summary>What a checkpoint holds state for; the header describes the rest.</summary>
    internal sealed record Parts(IMultiBranchModel Model, optim.Optimizer Optimizer, IMultiBranchObjective Objective, PrecisionPolicy Precision);

    public static void Write(string path, CheckpointHeader header, Parts parts) =>
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

    /// <summary>Describes the live model's state for a header: every tensor's name, dtype and shape.</summary>
    public static Dictionary<string, string> DescribeModel(IMultiBranchModel model) =>
        model.state_dict().ToDictionary(kv => kv.Key, kv => $"{kv.Value.dtype}[{string.Join(",", kv.Value.shape)}]");

    /// <summary>Checks a checkpoint against the live run (<paramref name="expected"/>) and, if it matches, restores every part.</summary>
    /// <returns>The checkpoint's header (position, metrics, best).</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is corrupted or does not match; nothing was changed.</exception>
    public static CheckpointHeader Restore(string path, CheckpointHeader expected, Parts parts)
    {
        var (json, sections) = CheckpointFile.Read(path);
        CheckpointHeader header;
        try
        {
            header = JsonSerializer.Deserialize<CheckpointHeader>(json) ?? throw new InvalidDataException($"Checkpoint '{path}' has an empty header.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"Checkpoint '{path}' has an unreadable header: {ex.Message}", ex);
        }

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

            using var noGrad = no_grad();
            foreach (var (name, tensor) in loaded)
            {
                live[name].copy_(tensor);
            }
        }
        finally
        {
            foreach (var tensor in loaded.Values)
            {
                tensor.Dispose();
            }
        }

        return header;
    }

    private static void Check(string path, CheckpointHeader header, CheckpointHeader expected, Dictionary<string, byte[]> sections)
    {
        foreach (var name in Sections.Where(n => !sections.ContainsKey(n)))
        {
            throw new InvalidDataException($"Checkpoint '{path}' has no '{name}' section.");
        }

        var problems = expected.ModelState.Keys.Except(header.ModelState.Keys).Select(k => $"missing {k}")
            .Concat(header.ModelState.Keys.Except(expected.ModelState.Keys).Select(k => $"unexpected {k}"))
            .Concat(expected.ModelState.Keys.Intersect(header.ModelState.Keys).Where(k => expected.ModelState[k] != header.ModelState[k])
                .Select(k => $"{k}: checkpoint {header.ModelState[k]}, model {expected.ModelState[k]}"))
            .ToList();
        if (problems.Count > 0)
        {
            throw new InvalidDataException(
                $"Checkpoint '{path}' does not match this model ({problems.Count} differences): {string.Join("; ", problems.Take(10))}.");
        }

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
