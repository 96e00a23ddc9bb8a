using System.Globalization;
using System.Text;
using DTSKD.Core;
using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;
using static TorchSharp.torch;

namespace DTSKD.Benchmarks;

/// <summary>
/// Training throughput through the real Trainer path (gather, on-device augmentation, model, DualTeacherLoss, optimizer,
/// loss scaling) for each model, stem and precision mode, on synthetic images of a given size (CIFAR's 32 by default).
/// </summary>
public static class StepThroughput
{
    public static int Run(Device device, string[] models, string[] modes, int batch, int steps, bool referenceWidth, int imageSize, string[] stems, string? output, string command)
    {
        var inv = CultureInfo.InvariantCulture;
        var rows = new List<string>();
        Console.WriteLine($"Machine: {MachineInfo.Describe(device)}");
        var width = referenceWidth ? new MultiBranchModelOptions() : new MultiBranchModelOptions { BaseWidth = 16, NeckWidth = 128 };
        foreach (var (name, mode, stemName) in models.SelectMany(m => stems.SelectMany(stem => modes.Select(mode => (m, mode, stem)))))
        {
            var stem = stemName switch
            {
                "cifar" => ModelStem.Cifar,
                "imagenet" => ModelStem.ImageNet,
                _ => throw new ArgumentException($"Unknown stem '{stemName}': use cifar or imagenet.", nameof(stems)),
            };
            var (precision, tf32) = mode switch
            {
                "fp32" => (TrainingPrecision.Float32, false),
                "tf32" => (TrainingPrecision.Float32, true),
                "bf16" => (TrainingPrecision.BFloat16, true),
                "fp16" => (TrainingPrecision.Float16, true),
                _ => throw new ArgumentException($"Unknown mode '{mode}': use fp32, tf32, bf16 or fp16.", nameof(modes)),
            };

            manual_seed(1);
            var n = batch * steps;
            using var images = randint(0, 256, [n, 3, imageSize, imageSize], ScalarType.Byte).DetachFromDisposeScope();
            using var labels = randint(0, 100, [n], ScalarType.Int64).DetachFromDisposeScope();
            using var train = ImageDataset.FromTensors(images, labels, 100, "synthetic-cifar");
            using var test = train.Take(batch);
            using var model = MultiBranchModels.Create(name, new MultiBranchModelOptions { BaseWidth = width.BaseWidth, NeckWidth = width.NeckWidth, Stem = stem });
            using var loss = DualTeacherLoss.For(model, n, new DualTeacherLossOptions { ValidateInputs = false }, device);
            using var trainer = new Trainer(model, loss, train, test, PadCropFlip.Cifar, new TrainerOptions
            {
                Epochs = 2, BatchSize = batch, Device = device, Precision = precision, AllowTf32 = tf32, Milestones = [], LogInterval = 1_000_000,
            });

            // Epoch 1 warms up (allocator, cuDNN algorithm choice); epoch 2 is measured.
            var result = trainer.Run();
            var measured = result.Metrics[1];
            rows.Add(string.Create(inv, $"| {name} | {stemName} | {imageSize} | {mode} | {measured.ImagesPerSecond:F1} | {1000.0 * measured.TrainSeconds / steps:F2} |"));
            Console.WriteLine(rows[^1]);
        }

        if (output is not null)
        {
            var text = new StringBuilder();
            text.AppendLine(CultureInfo.InvariantCulture, $"Measured on: {MachineInfo.Describe(device)}.");
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"Command: `{command}`. Width {(referenceWidth ? "reference (64, neck 512; 1024 for shufflev2_dtskd)" : "16/128")}, 100 classes, batch {batch}, {steps} steps per epoch, second epoch measured; the whole training path (gather, augmentation, forward, DTSKD loss, backward, optimizer step).");
            text.AppendLine();
            text.AppendLine("| model | stem | image side | mode | train images/s | ms per step |");
            text.AppendLine("| --- | --- | --- | --- | --- | --- |");
            rows.ForEach(r => text.AppendLine(r));
            File.WriteAllText(output, text.ToString());
        }

        return 0;
    }
}
