using System.CommandLine;
using DTSKD.Benchmarks;
using static TorchSharp.torch;

// Benchmarks and the ablation study. Run with --help.
var deviceOption = new Option<string>("--device") { Description = "cpu, cuda or auto.", DefaultValueFactory = _ => "auto" };
Device ResolveDevice(string name) => name switch
{
    "cpu" => CPU,
    "cuda" => CUDA,
    _ => cuda.is_available() ? CUDA : CPU,
};

var quick = new Option<bool>("--quick") { Description = "Fewer repetitions (a smoke run, not for the record)." };
var benchOutput = new Option<string?>("--output") { Description = "Markdown file to write the results to (for example docs/benchmarks.md)." };
var bench = new Command("bench", "Step time (DTSKD vs CE), eval and augmentation throughput, history memory, and a long run with flat memory.") { deviceOption, quick, benchOutput };
bench.SetAction(r => BenchmarkSuite.Run(ResolveDevice(r.GetValue(deviceOption)!), r.GetValue(quick), r.GetValue(benchOutput), "dotnet run -c Release --project bench/DTSKD.Benchmarks -- " + string.Join(' ', args)));

var ablation = AblationStudy.Command(deviceOption, ResolveDevice, args);

var root = new RootCommand("DTSKD.Core benchmarks and ablation study.") { bench, ablation };
return root.Parse(args).Invoke();
