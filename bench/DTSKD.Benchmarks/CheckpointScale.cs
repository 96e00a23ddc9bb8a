using System.Diagnostics;
using System.Globalization;
using DTSKD.Core;
using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using static TorchSharp.torch;

namespace DTSKD.Benchmarks;

/// <summary>
/// A trainer checkpoint whose history is larger than 2^31 bytes: written, verified and restored through the Trainer, with
/// the time of each and the resident memory the restore adds (the history's temporaries, not a copy of the file).
/// </summary>
public static class CheckpointScale
{
    public static int Run(int samples, int classes, string folder)
    {
        set_num_threads(Math.Max(1, Environment.ProcessorCount));
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, "scale.ckpt");
        Console.WriteLine($"{samples:N0} samples x {classes:N0} classes x 4 heads, dense float32 history: {4.0 * samples * classes * 4 / 1e9:F2} GB; {MachineInfo.Describe(CPU)}");

        // Tiny images: the history is what is large.
        using var data = ImageDataset.FromTensors(zeros([samples, 1, 4, 4], ScalarType.Byte), arange(samples, dtype: ScalarType.Int64).remainder(classes), classes, "scale");
        var options = new MultiBranchModelOptions { ClassCount = classes, InputChannels = 1, BaseWidth = 16, NeckWidth = 16 };
        var augmentation = new PadCropFlip([0.5], [0.25], padding: 0, horizontalFlip: false);
        double write, read;
        long fileBytes;
        byte[] rowsBefore;
        using (var model = MultiBranchModels.Create("resnet18_dtskd", options))
        using (var loss = DualTeacherLoss.For(model, samples))
        using (var trainer = new Trainer(model, loss, data, data, augmentation, new TrainerOptions { Epochs = 1 }))
        {
            Fill(loss.HistoricalTeacher!, samples, classes);
            rowsBefore = Sample(loss.HistoricalTeacher!, samples);
            var clock = Stopwatch.StartNew();
            trainer.SaveCheckpoint(path);
            write = clock.Elapsed.TotalSeconds;
            fileBytes = new FileInfo(path).Length;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"write: {fileBytes / 1e9:F2} GB in {write:F1} s"));
        }

        using (var model = MultiBranchModels.Create("resnet18_dtskd", options))
        using (var loss = DualTeacherLoss.For(model, samples))
        using (var trainer = new Trainer(model, loss, data, data, augmentation, new TrainerOptions { Epochs = 1 }))
        {
            var before = ProcessMemory.ResetPeak();
            var clock = Stopwatch.StartNew();
            trainer.LoadCheckpoint(path);
            read = clock.Elapsed.TotalSeconds;
            var peak = ProcessMemory.Read().Peak;
            var same = Sample(loss.HistoricalTeacher!, samples).SequenceEqual(rowsBefore);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"verify + restore: {read:F1} s; resident memory {before / 1e9:F2} GB before, peak {peak / 1e9:F2} GB during (+{(peak - before) / 1e9:F2} GB); rows restored exactly: {same}"));
            File.Delete(path);
            return same ? 0 : 1;
        }
    }

    /// <summary>Every row a distinct distribution, written in slices so no second copy of the table exists.</summary>
    private static void Fill(HistoricalTeacher history, int samples, int classes)
    {
        const int slice = 4096;
        for (var start = 0; start < samples; start += slice)
        {
            using var scope = NewDisposeScope();
            var n = Math.Min(slice, samples - start);
            var idx = arange(start, start + n, dtype: ScalarType.Int64);
            var logits = randn([4, n, classes], generator: new Generator((ulong)start + 1));
            using var output = new MultiBranchOutput(logits[0], [logits[1], logits[2], logits[3]]);
            history.Update(idx, output);
        }
    }

    /// <summary>The bytes of a thousand rows spread over the table, to compare before and after.</summary>
    private static byte[] Sample(HistoricalTeacher history, int samples)
    {
        using var scope = NewDisposeScope();
        var idx = linspace(0, samples - 1, 1000).to(ScalarType.Int64);
        return [.. Enumerable.Range(0, 4).SelectMany(h => history.Read(h, idx).contiguous().bytes.ToArray())];
    }
}
