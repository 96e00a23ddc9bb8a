using System.CommandLine;
using DTSKD.Benchmarks;
using DTSKD.Benchmarks.Study;
using DTSKD.Core.Training;
using static TorchSharp.torch;

// Benchmarks and the ablation study. Run with --help.
string[] List(string value) => value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
var deviceOption = new Option<string>("--device") { Description = TrainingDevice.Names + ".", DefaultValueFactory = _ => "auto" };
Device ResolveDevice(string name) => TrainingDevice.Choose(name);

var quick = new Option<bool>("--quick") { Description = "Fewer repetitions (a smoke run, not for the record)." };
var benchOutput = new Option<string?>("--output") { Description = "Markdown file to write the results to (for example docs/benchmarks.md)." };
var bench = new Command("bench", "Step time (DTSKD vs CE), eval and augmentation throughput, history memory, and a long run with flat memory.") { deviceOption, quick, benchOutput };
bench.SetAction(r => BenchmarkSuite.Run(ResolveDevice(r.GetValue(deviceOption)!), r.GetValue(quick), r.GetValue(benchOutput), "dotnet run -c Release --project bench/DTSKD.Benchmarks -- " + string.Join(' ', args)));

var modes = new Option<string>("--modes") { Description = "Comma-separated precision modes: fp32, tf32, bf16, fp16.", DefaultValueFactory = _ => "fp32,bf16" };
var batch = new Option<int>("--batch-size") { Description = "Batch size.", DefaultValueFactory = _ => 128 };
var steps = new Option<int>("--steps") { Description = "Steps per epoch (two epochs run; the second is measured).", DefaultValueFactory = _ => 50 };
var reference = new Option<bool>("--reference-width") { Description = "Use the reference width (64/512) instead of 16/128." };
var stepsOutput = new Option<string?>("--output") { Description = "Markdown file for the table." };
var stepModels = new Option<string>("--models") { Description = "Comma-separated models: " + string.Join(", ", DTSKD.Core.Models.MultiBranchModels.Names) + ".", DefaultValueFactory = _ => "resnet18_dtskd" };
var stepSize = new Option<int>("--image-size") { Description = "The side of the synthetic images.", DefaultValueFactory = _ => 32 };
var stems = new Option<string>("--stems") { Description = "Comma-separated stems: cifar, imagenet.", DefaultValueFactory = _ => "cifar" };
var stepPython = new Option<string?>("--pytorch") { Description = "A Python with PyTorch, to measure bench/pytorch/dtskd_step_bench.py beside ours (for example /usr/bin/python3)." };
var pytorchModes = new Option<string>("--pytorch-modes") { Description = "PyTorch's modes: fp32, tf32, amp-bf16, amp-fp16, each optionally -cl (channels_last).", DefaultValueFactory = _ => "fp32,fp32-cl,amp-bf16,amp-bf16-cl" };
var stepRounds = new Option<int>("--rounds") { Description = "Rounds, the two sides alternating.", DefaultValueFactory = _ => 1 };
var stepRanks = new Option<int>("--ranks") { Description = "With 2 or more: one process with that many threads against that many MPI processes (mpirun) of one thread, the same step batch split over them; all-reduce time and bytes per step (CPU, cifar stem).", DefaultValueFactory = _ => 1 };
var stepSyncBn = new Option<bool>("--sync-batch-norm") { Description = "With --ranks: the ranks also run with synchronised batch norms, a row of their own." };
var throughput = new Command("steps", "Training throughput through the Trainer for each model, stem and precision mode (with --pytorch, beside PyTorch's; with --ranks, data-parallel against one process).") { deviceOption, stepModels, modes, batch, steps, reference, stepSize, stems, stepPython, pytorchModes, stepRounds, stepRanks, stepSyncBn, stepsOutput };
throughput.SetAction(r => r.GetValue(stepRanks) > 1
    ? DataParallelThroughput.Run(List(r.GetValue(stepModels)!), List(r.GetValue(modes)!), r.GetValue(batch), r.GetValue(steps), r.GetValue(reference), r.GetValue(stepSize),
        r.GetValue(stepRanks), r.GetValue(stepRounds), r.GetValue(stepSyncBn), r.GetValue(stepsOutput), "dotnet run -c Release --project bench/DTSKD.Benchmarks -- " + string.Join(' ', args))
    : StepThroughput.Run(
    ResolveDevice(r.GetValue(deviceOption)!),
    r.GetValue(stepModels)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
    r.GetValue(modes)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
    r.GetValue(batch), r.GetValue(steps), r.GetValue(reference), r.GetValue(stepSize),
    r.GetValue(stems)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
    r.GetValue(stepPython), r.GetValue(pytorchModes)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), r.GetValue(stepRounds), r.GetValue(stepsOutput),
    "dotnet run -c Release --project bench/DTSKD.Benchmarks -- " + string.Join(' ', args)));

// One rank of `steps --ranks`, started by mpirun; not for users.
var stepRank = new Command("steps-rank", "One rank of steps --ranks (started by mpirun).") { stepModels, modes, batch, steps, reference, stepSize, stepSyncBn };
stepRank.Hidden = true;
stepRank.SetAction(r => DataParallelThroughput.Rank(r.GetValue(stepModels)!, r.GetValue(modes)!, r.GetValue(batch), r.GetValue(steps), r.GetValue(reference), r.GetValue(stepSize), r.GetValue(stepSyncBn)));

var gradModel = new Option<string>("--model") { Description = "Model.", DefaultValueFactory = _ => "resnet18_dtskd" };
var gradChannels = new Option<int>("--channels") { Description = "Input channels.", DefaultValueFactory = _ => 3 };
var gradSides = new Option<string>("--image-sizes") { Description = "Comma-separated image sides.", DefaultValueFactory = _ => "16,28,32" };
var gradWidth = new Option<int>("--base-width") { Description = "Base width (neck 4x).", DefaultValueFactory = _ => 16 };
var gradBatch = new Option<int>("--batch-size") { Description = "Batch size.", DefaultValueFactory = _ => 16 };
var gradients = new Command("layout-gradients", "Float32 gradients of one pass, contiguous and channels-last, against float64's.") { gradModel, gradChannels, gradSides, gradWidth, gradBatch };
gradients.SetAction(r => LayoutGradients.Run(r.GetValue(gradModel)!, r.GetValue(gradChannels),
    [.. r.GetValue(gradSides)!.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, System.Globalization.CultureInfo.InvariantCulture))],
    r.GetValue(gradWidth), r.GetValue(gradBatch)));

#if !NO_PLOTS
var deployModel = new Option<string>("--model") { Description = "Model.", DefaultValueFactory = _ => "resnet18_dtskd" };
var deployReference = new Option<bool>("--reference-width") { Description = "The reference width (64/512) instead of 16/128." };
var deploySize = new Option<int>("--image-size") { Description = "The side of the input images.", DefaultValueFactory = _ => 32 };
var deployBatches = new Option<string>("--batch-sizes") { Description = "Comma-separated batch sizes.", DefaultValueFactory = _ => "1,64" };
var deployRounds = new Option<int>("--rounds") { Description = "Rounds; in each, every engine runs in turn.", DefaultValueFactory = _ => 4 };
var deploySeconds = new Option<double>("--seconds") { Description = "Seconds of calls per engine and batch size, over all rounds.", DefaultValueFactory = _ => 20 };
var deployOutput = new Option<string?>("--output") { Description = "Markdown file for the table." };
var deploy = new Command("deploy", "Inference of the exported classifier: ONNX Runtime (BatchNorm folded and not) against TorchSharp eval, median and p99 latency.")
{
    deployModel, deployReference, deploySize, deployBatches, deployRounds, deploySeconds, deployOutput,
};
deploy.SetAction(r => DeployBench.Run(r.GetValue(deployModel)!, r.GetValue(deployReference), r.GetValue(deploySize),
    [.. r.GetValue(deployBatches)!.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, System.Globalization.CultureInfo.InvariantCulture))],
    r.GetValue(deployRounds), r.GetValue(deploySeconds), r.GetValue(deployOutput), "dotnet run -c Release --project bench/DTSKD.Benchmarks -- " + string.Join(' ', args)));
#endif

#if !NO_PLOTS
var matrixManifest = new Option<string>("--manifest") { Description = "The manifest.tsv eng/export-torchvision-matrix.py writes beside the files.", Required = true };
var matrixTrain = new Option<int>("--train-images") { Description = "Fashion-MNIST images of the fine-tuning epoch.", DefaultValueFactory = _ => 512 };
var matrixTest = new Option<int>("--test-images") { Description = "Fashion-MNIST images the logits are compared on.", DefaultValueFactory = _ => 8 };
var matrixOutput = new Option<string?>("--output") { Description = "Markdown file for the table." };
var matrix = new Command("onnx-matrix", "torch.onnx files of torchvision's classifiers: import, logits against ONNX Runtime, one fine-tuning epoch, export again.") { matrixManifest, matrixTrain, matrixTest, matrixOutput };
matrix.SetAction(r => OnnxMatrix.Run(r.GetValue(matrixManifest)!, r.GetValue(matrixTrain), r.GetValue(matrixTest), r.GetValue(matrixOutput), "dotnet run -c Release --project bench/DTSKD.Benchmarks -- " + string.Join(' ', args)));
#endif

var samples = new Option<int>("--samples") { Description = "N, the training set size.", DefaultValueFactory = _ => 1_281_167 };
var classes = new Option<int>("--classes") { Description = "C, the number of classes.", DefaultValueFactory = _ => 1000 };
var heads = new Option<int>("--heads") { Description = "Heads (backbone plus branches).", DefaultValueFactory = _ => 4 };
var history = new Command("history", "The historical teacher at a data set's scale (ImageNet-1k by default): memory and read+update time of every storage mode.") { deviceOption, samples, classes, heads, quick };
history.SetAction(r =>
{
    var (warmup, runs) = r.GetValue(quick) ? (2, 5) : (5, 21);
    Console.Write(HistoryScale.Table(HistoryScale.Measure(ResolveDevice(r.GetValue(deviceOption)!), r.GetValue(samples), r.GetValue(classes), r.GetValue(heads), warmup, runs), null));
    return 0;
});

var scaleSamples = new Option<int>("--samples") { Description = "N, the training set size.", DefaultValueFactory = _ => 160_000 };
var scaleClasses = new Option<int>("--classes") { Description = "C, the number of classes.", DefaultValueFactory = _ => 1000 };
var scaleFolder = new Option<string>("--folder") { Description = "Where the checkpoint is written (and removed).", DefaultValueFactory = _ => Path.GetTempPath() };
var checkpoint = new Command("checkpoint", "A trainer checkpoint with a dense float32 history of 4 x N x C values (2.56 GB by default): write, verify and restore times, and the memory the restore adds.")
{
    scaleSamples, scaleClasses, scaleFolder,
};
checkpoint.SetAction(r => CheckpointScale.Run(r.GetValue(scaleSamples), r.GetValue(scaleClasses), r.GetValue(scaleFolder)!));

#if !NO_PLOTS
var imageFolder = new Option<string>("--folder") { Description = "A folder of class folders of images (eng/make-bench-folder.py writes one).", Required = true };
var imageSize = new Option<int>("--size") { Description = "The side images are decoded to.", DefaultValueFactory = _ => 224 };
var imageWorkers = new Option<int>("--workers") { Description = "Decoding threads (and the DataLoader's workers).", DefaultValueFactory = _ => 2 };
var python = new Option<string?>("--pytorch") { Description = "A Python with torchvision, to measure its ImageFolder + DataLoader beside ours (for example /usr/bin/python3)." };
var rounds = new Option<int>("--rounds") { Description = "Rounds of the decode comparison, the two sides alternating.", DefaultValueFactory = _ => 2 };
var imagesOutput = new Option<string?>("--output") { Description = "Markdown file for the results." };
var images = new Command("images", "Image folders: decode throughput against torchvision, the cache's share of a training step, streaming memory.")
{
    imageFolder, imageSize, imageWorkers, python, rounds, imagesOutput,
};
images.SetAction(r => ImageFolderBench.Run(r.GetValue(imageFolder)!, r.GetValue(imageSize), r.GetValue(imageWorkers), r.GetValue(python), r.GetValue(rounds), r.GetValue(imagesOutput),
    "dotnet run -c Release --project bench/DTSKD.Benchmarks -- " + string.Join(' ', args)));
#endif

#if !NO_PLOTS
var tunePython = new Option<string>("--pytorch") { Description = "A Python with PyTorch and torchvision (for example /usr/bin/python3): it writes the resnet18 both sides train and times its own step.", Required = true };
var tuneObjectives = new Option<string>("--objectives") { Description = "Ours: ce (the backbone head, as PyTorch's side), dtskd (the recipe's loss).", DefaultValueFactory = _ => "ce,dtskd" };
var tuneModes = new Option<string>("--modes") { Description = "Ours: fp32, bf16, each optionally -cl (channels-last).", DefaultValueFactory = _ => "bf16,bf16-cl" };
var tunePyModes = new Option<string>("--pytorch-modes") { Description = "PyTorch's: fp32, amp-bf16, each optionally -cl.", DefaultValueFactory = _ => "amp-bf16,amp-bf16-cl" };
var tuneBatch = new Option<int>("--batch-size") { Description = "Images per step (the fine-tuning recipe's 32).", DefaultValueFactory = _ => 32 };
var tuneSteps = new Option<int>("--steps") { Description = "Steps per epoch (two epochs run; the second is timed).", DefaultValueFactory = _ => 10 };
var tuneSize = new Option<int>("--image-size") { Description = "The side of the images the network sees.", DefaultValueFactory = _ => 224 };
var tuneRounds = new Option<int>("--rounds") { Description = "Rounds, the two sides alternating.", DefaultValueFactory = _ => 2 };
var tuneOutput = new Option<string?>("--output") { Description = "Markdown file for the table." };
var fineTuneSteps = new Command("finetune-steps", "The fine-tuning step of torchvision's resnet18 at 224 pixels: DTSKD.Core (TorchvisionResNet.Load + FineTuning) against PyTorch, alternating.")
{
    tunePython, tuneObjectives, tuneModes, tunePyModes, tuneBatch, tuneSteps, tuneSize, tuneRounds, tuneOutput,
};
fineTuneSteps.SetAction(r => FineTuneThroughput.Run(r.GetValue(tunePython)!, List(r.GetValue(tuneObjectives)!), List(r.GetValue(tuneModes)!), List(r.GetValue(tunePyModes)!),
    r.GetValue(tuneBatch), r.GetValue(tuneSteps), r.GetValue(tuneSize), r.GetValue(tuneRounds), r.GetValue(tuneOutput),
    "dotnet run -c Release --project bench/DTSKD.Benchmarks -- " + string.Join(' ', args)));
#endif

#if !NO_PLOTS
var loadRequests = new Option<int>("--requests") { Description = "Good requests per row (an attacked row runs on until every bomb is answered).", DefaultValueFactory = _ => 2000 };
var loadFiles = new Option<int>("--files") { Description = "Image paths given to predict --onnx at once.", DefaultValueFactory = _ => 10_000 };
var loadSeconds = new Option<double>("--seconds") { Description = "The least time each row runs, so that rows alone and beside the bombs run alike.", DefaultValueFactory = _ => 20 };
var loadBombs = new Option<int>("--bombs") { Description = "Bombs sent at the start of each attacked row: half 12 KB PNGs of 9999 x 9999, half 154-byte BMPs claiming as much.", DefaultValueFactory = _ => 48 };
var loadOutput = new Option<string?>("--output") { Description = "Markdown file for the table." };
var serveLoad = new Command("serve-load", "The serving sample under load: good requests at 16 and 64 concurrent, alone and beside decompression bombs (48 by default) (requests/s, p50/p99, /health, peak RSS); then predict --onnx over 10,000 paths.")
{
    loadRequests, loadSeconds, loadFiles, loadBombs, loadOutput,
};
serveLoad.SetAction(r => ServeLoadBench.Run(r.GetValue(loadRequests), r.GetValue(loadSeconds), r.GetValue(loadFiles), r.GetValue(loadBombs), r.GetValue(loadOutput), "dotnet run -c Release --project bench/DTSKD.Benchmarks -- " + string.Join(' ', args)));
#endif

var ablation = AblationStudy.Command(deviceOption, ResolveDevice, args);

var root = new RootCommand("DTSKD.Core benchmarks and ablation study.") { bench, throughput, stepRank, history, checkpoint, ablation, gradients };
#if !NO_PLOTS
root.Add(images);
root.Add(deploy);
root.Add(fineTuneSteps);
root.Add(serveLoad);
root.Add(matrix);
#endif
#if !NO_PLOTS
BenchCommandLine.AllowZero(loadBombs, loadSeconds);
#endif
samples.Validators.Add(r =>
{
    // One measured step reads and updates 128 rows.
    if (r.GetValueOrDefault<int>() < 128)
    {
        r.AddError($"--samples must be 128 or more (one step reads 128 rows); got {r.GetValueOrDefault<int>()}.");
    }
});
BenchCommandLine.Check(bench, throughput, stepRank, history, checkpoint, gradients);
#if !NO_PLOTS
BenchCommandLine.Check(images, deploy, fineTuneSteps, serveLoad);
#endif
var parsed = root.Parse(args);

// A report that cannot be written is refused before minutes of measuring, not with a stack trace after them.
if (parsed.Errors.Count == 0 && parsed.Action == parsed.CommandResult.Command.Action && parsed.CommandResult.Command.Options.Any(o => o.Name == "--output") && parsed.GetValue<string?>("--output") is { } report
    && BenchOutput.Problem(report) is { } problem)
{
    Console.Error.WriteLine($"error: --output '{report}' {problem}.");
    return 2;
}

return BenchCommandLine.Invoke(parsed);
