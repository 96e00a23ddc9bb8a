using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;

return DTSKD.Benchmarks.MlNet.MlNetBaseline.Command().Parse(args).Invoke();

namespace DTSKD.Benchmarks.MlNet
{
    /// <summary>
    /// ML.NET's own transfer-learning pipeline on an image folder, as its documentation builds it: <c>LoadImages</c>,
    /// <c>ResizeImages(224)</c>, <c>ExtractPixels</c>, <c>DnnFeaturizeImage(ResNet18)</c> (the ImageNet network of the
    /// Microsoft.ML.DnnImageFeaturizer.ResNet18 package), <c>LbfgsMaximumEntropy</c>; trained on the folder's train/ and scored on
    /// its val/, the split the ablation's folder runs use. The peer of a fine-tuned DTSKD run in docs/pretrained.md. A program of
    /// its own because ML.NET 5 is built on SkiaSharp 2.88, whose pixel API the SkiaSharp 3 of DTSKD.Core.Images replaced.
    /// </summary>
    internal static class MlNetBaseline
    {
        private sealed class Row
        {
            public string ImagePath { get; set; } = "";

            public string Label { get; set; } = "";
        }

        public static RootCommand Command()
        {
            var dataPath = new Option<string>("--data-path") { Description = "A folder with train/<class>/ and val/<class>/ images.", Required = true };
            var seeds = new Option<string>("--seeds") { Description = "Comma-separated MLContext seeds.", DefaultValueFactory = _ => "1" };
            var output = new Option<string?>("--output") { Description = "A Markdown file for the result table (default: print only)." };
            var command = new RootCommand( "ML.NET's DnnFeaturizeImage(ResNet18) + LbfgsMaximumEntropy pipeline on a train/val image folder: top-1 on val/ and wall time.") { dataPath, seeds, output };
            command.SetAction(r =>
            {
                var root = r.GetValue(dataPath)!;
                if (!Directory.Exists(Path.Combine(root, "train")) || !Directory.Exists(Path.Combine(root, "val")))
                {
                    Console.Error.WriteLine($"error: --data-path '{root}' needs train/<class>/ and val/<class>/ folders.");
                    return 2;
                }

                var seedList = r.GetValue(seeds)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (seedList.Length == 0 || seedList.Any(s => !int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out _)))
                {
                    Console.Error.WriteLine($"error: --seeds '{r.GetValue(seeds)}' must be comma-separated integers, such as 1,2,3.");
                    return 2;
                }

                var results = new List<(int Seed, double Top1, double Seconds)>();
                foreach (var seed in seedList.Select(s => int.Parse(s, CultureInfo.InvariantCulture)))
                {
                    var (top1, seconds) = Run(root, seed);
                    results.Add((seed, top1, seconds));
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ML.NET DnnFeaturizeImage(ResNet18) + LbfgsMaximumEntropy, seed {seed}: top-1 {top1:F2}% in {seconds:F0} s"));
                }

                if (r.GetValue(output) is { } report)
                {
                    var text = new StringBuilder();
                    text.AppendLine(CultureInfo.InvariantCulture, $"| seed | top-1 (%) | wall (s) |");
                    text.AppendLine("|---:|---:|---:|");
                    foreach (var (seed, top1, seconds) in results)
                    {
                        text.AppendLine(CultureInfo.InvariantCulture, $"| {seed} | {top1:F2} | {seconds:F0} |");
                    }

                    text.AppendLine();
                    text.AppendLine(CultureInfo.InvariantCulture, $"Machine: {Machine()}; ML.NET {typeof(MLContext).Assembly.GetCustomAttribute<System.Reflection.AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]}.");
                    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(report))!);
                    File.WriteAllText(report, text.ToString());
                }

                return 0;
            });
            return command;
        }

        private static IEnumerable<Row> Rows(string folder) =>
            Directory.GetDirectories(folder).Order(StringComparer.Ordinal)
                .SelectMany(c => Directory.GetFiles(c).Order(StringComparer.Ordinal).Select(f => new Row { ImagePath = f, Label = Path.GetFileName(c) }));

        private static (double Top1, double Seconds) Run(string root, int seed)
        {
            var clock = Stopwatch.StartNew();
            var ml = new MLContext(seed);
            var train = ml.Data.LoadFromEnumerable(Rows(Path.Combine(root, "train")));
            var test = ml.Data.LoadFromEnumerable(Rows(Path.Combine(root, "val")));
            var pipeline = ml.Transforms.Conversion.MapValueToKey("LabelKey", nameof(Row.Label))
                .Append(ml.Transforms.LoadImages("Image", imageFolder: "", inputColumnName: nameof(Row.ImagePath)))
                .Append(ml.Transforms.ResizeImages("Image", imageWidth: 224, imageHeight: 224))
                .Append(ml.Transforms.ExtractPixels("Pixels", "Image"))
                .Append(ml.Transforms.DnnFeaturizeImage("Features", m => m.ModelSelector.ResNet18(ml, m.OutputColumn, m.InputColumn), "Pixels"))
                .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy("LabelKey", "Features"));
            var model = pipeline.Fit(train);
            var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test), "LabelKey");
            return (100 * metrics.MicroAccuracy, clock.Elapsed.TotalSeconds);
        }

        private static string Machine()
        {
            var cpu = File.Exists("/proc/cpuinfo")
                ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
                : null;
            return $"{cpu ?? System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString()}, {Environment.ProcessorCount} logical cores";
        }
    }
}
