using System.Globalization;
using System.Reflection;
using System.Text.Json;
using DTSKD.Core.Models;
using Google.Protobuf;
using Onnx;
using DTSKD.Core.Deployment;

namespace DTSKD.Core.Onnx;

/// <summary>
/// Writes a trained multi-branch model as an ONNX file that ONNX Runtime and ML.NET run without LibTorch: the plain
/// classifier (the backbone and its head) or every head, in inference form (BatchNorm's running statistics, Dropout as
/// identity), opset <see cref="OnnxContract.Opset"/>, a dynamic batch, and the preprocessing in the metadata
/// (<see cref="OnnxContract"/>).
/// </summary>
public static class OnnxExport
{
    /// <summary>Exports a model to a file (written whole or not at all).</summary>
    /// <param name="model">One of the five built-in networks, or a <see cref="MultiBranchNetwork"/> whose backbone implements <see cref="IBackboneGraph"/>.</param>
    /// <param name="path">The .onnx file.</param>
    /// <param name="options">The preprocessing contract and the graph's form.</param>
    /// <returns>What was written.</returns>
    /// <exception cref="NotSupportedException">A part of the model cannot be exported; the message names its path and type.</exception>
    public static OnnxExportSummary Export(IMultiBranchModel model, string path, OnnxExportOptions options)
    {
        ArgumentNullException.ThrowIfNull(path);
        var (bytes, summary) = Build(model, options);
        AtomicFile.Write(path, s => s.Write(bytes));
        return summary with { Path = Path.GetFullPath(path) };
    }

    /// <summary>Exports a model to bytes (for a stream, a database, a test).</summary>
    /// <param name="model">As for <see cref="Export"/>.</param>
    /// <param name="options">The preprocessing contract and the graph's form.</param>
    public static byte[] ToBytes(IMultiBranchModel model, OnnxExportOptions options) => Build(model, options).Bytes;

    /// <summary>A JSON array of strings, written without reflection (so trimmed and AOT-compiled apps export too).</summary>
    private static string JsonArray(IReadOnlyList<string> values)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            foreach (var value in values)
            {
                writer.WriteStringValue(value);
            }

            writer.WriteEndArray();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static (byte[] Bytes, OnnxExportSummary Summary) Build(IMultiBranchModel model, OnnxExportOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (model is not IBackboneSource source)
        {
            throw new NotSupportedException(
                $"{model.GetType().FullName} is not a DTSKD.Core network, so its forward pass is unknown to the exporter; build it as a MultiBranchNetwork whose backbone implements IBackboneGraph.");
        }

        if (options.ClassNames is { } names && names.Count != model.ClassCount)
        {
            throw new ArgumentException($"ClassNames has {names.Count} names; the model predicts {model.ClassCount} classes.", nameof(options));
        }

        var channels = options.Mean.Count;
        var graph = new OnnxGraphWriter();
        var heads = source.DescribeHeads(graph, graph.Input(channels), options.AllHeads);
        List<(string Name, long Classes)> outputs = [.. heads.Select((h, i) => (i == 0 ? OnnxContract.LogitsName : OnnxContract.BranchName(i), h.Channels))];
        for (var i = 0; i < heads.Count; i++)
        {
            graph.Output(heads[i], outputs[i].Name);
        }

        var folded = options.FoldBatchNorm ? graph.FoldBatchNorms() : 0;
        var name = (model as DtskdNetwork)?.GetName() ?? model.GetType().Name;
        var inv = CultureInfo.InvariantCulture;
        var metadata = new List<(string, string)>
        {
            (OnnxContract.ModelKey, name),
            (OnnxContract.ImageSizeKey, options.ImageSize.ToString(inv)),
            (OnnxContract.DecodeSizeKey, (options.DecodeSize ?? options.ImageSize).ToString(inv)),
            (OnnxContract.ChannelsKey, channels.ToString(inv)),
            (OnnxContract.MeanKey, string.Join(",", options.Mean.Select(m => m.ToString("R", inv)))),
            (OnnxContract.StdKey, string.Join(",", options.Std.Select(s => s.ToString("R", inv)))),
            (OnnxContract.OutputsKey, string.Join(",", outputs.Select(o => o.Name))),
            (OnnxContract.FoldedKey, options.FoldBatchNorm ? "true" : "false"),
        };
        if (options.ClassNames is { } classNames)
        {
            metadata.Add((OnnxContract.ClassNamesKey, JsonArray(classNames)));
        }

        var version = typeof(OnnxExport).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0";
        var file = new ModelProto
        {
            IrVersion = OnnxContract.IrVersion,
            ProducerName = "DTSKD.Core.Onnx",
            ProducerVersion = version,
            DocString = string.Create(inv,
                $"{name}: input '{OnnxContract.InputName}' float32 [batch, {channels}, {options.ImageSize}, {options.ImageSize}], images decoded to {options.DecodeSize ?? options.ImageSize} pixels and centre-cropped, pixels as (value / 255 - mean) / std with the metadata's mean and std; outputs {string.Join(", ", outputs.Select(o => $"'{o.Name}'"))}: logits [batch, {model.ClassCount}]."),
            Graph = graph.Graph(name, (channels, options.ImageSize, options.ImageSize), outputs),
        };
        file.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = OnnxContract.Opset });
        file.MetadataProps.AddRange(metadata.Select(m => new StringStringEntryProto { Key = m.Item1, Value = m.Item2 }));
        var bytes = file.ToByteArray();
        return (bytes, new OnnxExportSummary("", outputs.Select(o => o.Name).ToList(), folded, graph.WeightCount, bytes.LongLength));
    }
}
