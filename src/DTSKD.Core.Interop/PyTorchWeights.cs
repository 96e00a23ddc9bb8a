using System.Collections;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace DTSKD.Core.Interop;

/// <summary>
/// Loads and saves a module's state dict (parameters and buffers, by name) in PyTorch's formats, so weights
/// travel between TorchSharp and PyTorch: <c>torch.save(state_dict)</c> files (<c>.pt</c>, <c>.pth</c>, <c>.bin</c>)
/// and <c>.safetensors</c>. The format is chosen by the file extension.
/// </summary>
public static class PyTorchWeights
{
    /// <summary>
    /// Copies the tensors of a state-dict file into the module's parameters and buffers (on whatever device
    /// they live). The file must hold exactly the module's names with the same shapes; otherwise nothing is
    /// changed and the error lists every difference.
    /// </summary>
    /// <param name="module">The module to load into.</param>
    /// <param name="path">A <c>.safetensors</c> file, or a file written by <c>torch.save(model.state_dict(), path)</c>.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The path is a folder, the file cannot be read or holds non-finite weights, or does not match the module; the message lists the differences.</exception>
    public static void Load(nn.Module module, string path)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(path);
        var loaded = Read(path);
        try
        {
            var target = module.state_dict();
            var problems = Compare(target, loaded);
            if (problems.Count > 0)
            {
                throw new InvalidDataException(
                    $"'{path}' does not match the module ({problems.Count} differences): {string.Join("; ", problems)}.");
            }

            using var noGrad = no_grad();
            foreach (var (name, tensor) in target)
            {
                var source = loaded[name];
                tensor.copy_(source.dtype == tensor.dtype ? source : source.to(tensor.dtype));
            }
        }
        finally
        {
            foreach (var tensor in loaded.Values)
            {
                tensor.Dispose();
            }
        }
    }

    /// <summary>Writes the module's state dict (atomically: a temporary file, then a rename).</summary>
    /// <param name="module">The module.</param>
    /// <param name="path">A <c>.safetensors</c> file, or a <c>.pt</c>/<c>.pth</c>/<c>.bin</c> file in <c>torch.save</c>'s format.</param>
    public static void Save(nn.Module module, string path)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(path);
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            // Fresh contiguous CPU copies, each with its own storage at offset 0: both formats store plain row-major data,
            // and a parameter that is a view into a larger buffer (an optimizer's flat storage, tied weights, a slice)
            // would otherwise be pickled with its offset into a storage that holds only its own elements.
            var state = module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu().contiguous().clone());
            try
            {
                using (var stream = File.Create(temp))
                {
                    if (IsSafetensors(path))
                    {
                        Safetensors.SaveStateDict(stream, state, leaveOpen: true);
                    }
                    else
                    {
                        PyTorchPickler.PickleStateDict(stream, state, leaveOpen: true);
                    }
                }
            }
            finally
            {
                foreach (var tensor in state.Values)
                {
                    tensor.Dispose();
                }
            }

            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }

    /// <summary>Reads the names, dtypes and shapes stored in a state-dict file, without a module.</summary>
    /// <param name="path">The file.</param>
    /// <returns>Each entry as (dtype, shape), by name.</returns>
    public static IReadOnlyDictionary<string, (ScalarType DType, long[] Shape)> Describe(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var loaded = Read(path);
        try
        {
            return loaded.ToDictionary(kv => kv.Key, kv => (kv.Value.dtype, kv.Value.shape));
        }
        finally
        {
            foreach (var tensor in loaded.Values)
            {
                tensor.Dispose();
            }
        }
    }

    private static bool IsZip(string path)
    {
        Span<byte> magic = stackalloc byte[4];
        using var stream = File.OpenRead(path);
        return stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false) == 4 && magic.SequenceEqual("PK\u0003\u0004"u8);
    }

    private static bool IsSafetensors(string path) => path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Every tensor of a state-dict file by name (the caller disposes them), checked: a safetensors header against the file
    /// before anything is allocated, and every floating-point tensor finite.
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The path is a folder, or the file is not a state dict, is truncated, or holds non-finite weights (the tensor named).</exception>
    internal static Dictionary<string, Tensor> Read(string path)
    {
        if (Directory.Exists(path))
        {
            throw new InvalidDataException($"'{path}' is a folder, not a weights file.");
        }

        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Weights file '{path}' does not exist.", path);
        }

        Dictionary<string, Tensor> result;
        try
        {
            if (IsSafetensors(path))
            {
                SafetensorsHeader.Check(path);
                result = Safetensors.LoadStateDict(path);
            }
            else
            {
                result = Pickled(path);
            }
        }
        catch (Exception ex) when (ex is not InvalidDataException and not OutOfMemoryException and not FileNotFoundException)
        {
            throw new InvalidDataException($"'{path}' could not be read as a {(IsSafetensors(path) ? "safetensors" : "torch.save state-dict")} file: {ex.Message}", ex);
        }

        // Weights that load and then fail mid-run: NaN or infinite values are refused here, named.
        foreach (var (name, tensor) in result.Where(e => e.Value.is_floating_point()))
        {
            if (!tensor.isfinite().all().item<bool>())
            {
                foreach (var t in result.Values)
                {
                    t.Dispose();
                }

                throw new InvalidDataException($"'{path}': tensor '{name}' holds NaN or infinite values; the weights are damaged (save them again from a network that computes finite outputs).");
            }
        }

        return result;
    }

    private static Dictionary<string, Tensor> Pickled(string path)
    {
        if (!IsZip(path))
        {
            throw new InvalidDataException(
                $"'{path}' is not a torch.save file: torch.save writes a zip archive (PyTorch 1.6 and later), this file is not one; save the state dict with torch.save(model.state_dict(), path), or as .safetensors.");
        }

        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (DictionaryEntry entry in PyTorchUnpickler.UnpickleStateDict(path))
            {
                if (entry.Key is not string name || entry.Value is not Tensor tensor)
                {
                    throw new InvalidDataException($"'{path}' holds an entry that is not a named tensor ({entry.Key}); save model.state_dict(), not the model.");
                }

                result[name] = tensor;
            }
        }
        catch (InvalidDataException ex) when (!ex.Message.Contains(path, StringComparison.Ordinal))
        {
            // The zip reader's own words ("End of Central Directory record could not be found") name neither file nor fix.
            foreach (var t in result.Values)
            {
                t.Dispose();
            }

            throw new InvalidDataException($"'{path}' is a truncated or damaged torch.save archive ({ex.Message.TrimEnd('.')}); save the state dict again.", ex);
        }

        return result;
    }

    private static List<string> Compare(Dictionary<string, Tensor> target, Dictionary<string, Tensor> loaded)
    {
        static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";
        var problems = new List<string>();
        problems.AddRange(target.Keys.Except(loaded.Keys).Order(StringComparer.Ordinal).Select(k => $"missing {k} {Shape(target[k])}"));
        problems.AddRange(loaded.Keys.Except(target.Keys).Order(StringComparer.Ordinal).Select(k => $"unexpected {k} {Shape(loaded[k])}"));
        problems.AddRange(target.Keys.Intersect(loaded.Keys).Order(StringComparer.Ordinal)
            .Where(k => !target[k].shape.SequenceEqual(loaded[k].shape))
            .Select(k => $"{k}: file {Shape(loaded[k])}, module {Shape(target[k])}"));
        return problems;
    }
}
