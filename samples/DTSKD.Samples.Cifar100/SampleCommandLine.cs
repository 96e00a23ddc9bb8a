using System.CommandLine;
using System.CommandLine.Parsing;
using DTSKD.Core.Models;

namespace DTSKD.Samples.Cifar100;

/// <summary>The command line: the release's flags in .NET style, defaulting to the paper's CIFAR-100 recipe.</summary>
public static class SampleCommandLine
{
    private static readonly string[] DataTypes = ["cifar100", "cifar10", "fashion-mnist"];
    private static readonly string[] Decays = ["cos", "linear"];
    private static readonly string[] Devices = ["auto", "cpu", "cuda"];
    private static readonly string[] Precisions = ["auto", "fp32", "bf16", "fp16"];

    /// <summary>Parses and validates the arguments.</summary>
    /// <returns>The configuration, or the first error as one line.</returns>
    public static (ExperimentConfig? Config, string? Error, bool HelpShown) Parse(string[] args, TextWriter output)
    {
        var d = new ExperimentConfig();
        var lr = Positive(new Option<double>("--lr") { Description = "Initial learning rate.", DefaultValueFactory = _ => d.Lr });
        var schedule = new Option<int[]>("--lr-decay-schedule")
        {
            Description = $"Epoch indices at which the learning rate is multiplied by --lr-decay-rate, as the release counts them (from 0: 150 is the 151st epoch). Default: {string.Join(" ", d.LrDecaySchedule)}.",
            DefaultValueFactory = _ => d.LrDecaySchedule,
            AllowMultipleArgumentsPerToken = true,
        };
        var rate = Positive(new Option<double>("--lr-decay-rate") { Description = "Learning-rate factor at each milestone.", DefaultValueFactory = _ => d.LrDecayRate });
        var wd = NonNegative(new Option<double>("--weight-decay") { Description = "SGD weight decay (on all parameters).", DefaultValueFactory = _ => d.WeightDecay });
        var momentum = NonNegative(new Option<double>("--momentum") { Description = "SGD Nesterov momentum.", DefaultValueFactory = _ => d.Momentum });
        var epochs = Positive(new Option<int>("--epochs") { Description = "Number of epochs.", DefaultValueFactory = _ => d.Epochs });
        var batch = Positive(new Option<int>("--batch-size") { Description = "Training batch size.", DefaultValueFactory = _ => d.BatchSize });
        var evalBatch = Positive(new Option<int>("--eval-batch-size") { Description = "Evaluation batch size.", DefaultValueFactory = _ => d.EvalBatchSize });
        var hskd = new Option<int>("--hskd") { Description = "1: historical teacher on (soft targets on every head); 0: hard-label CE on the backbone.", DefaultValueFactory = _ => 1 };
        hskd.AcceptOnlyFromAmong("0", "1");
        var backbone = NonNegative(new Option<double>("--backbone-weight") { Description = "Weight of the backbone's historical term.", DefaultValueFactory = _ => d.BackboneWeight });
        var b1 = NonNegative(new Option<double>("--b1-weight") { Description = "Weight of branch 1's historical term.", DefaultValueFactory = _ => d.B1Weight });
        var b2 = NonNegative(new Option<double>("--b2-weight") { Description = "Weight of branch 2's historical term.", DefaultValueFactory = _ => d.B2Weight });
        var b3 = NonNegative(new Option<double>("--b3-weight") { Description = "Weight of branch 3's historical term.", DefaultValueFactory = _ => d.B3Weight });
        var ce = NonNegative(new Option<double>("--ce-weight") { Description = "Weight of the historical (or hard-label) part.", DefaultValueFactory = _ => d.CeWeight });
        var kd = NonNegative(new Option<double>("--kd-weight") { Description = "Weight of the structural teacher's KD terms.", DefaultValueFactory = _ => d.KdWeight });
        var temperature = Positive(new Option<double>("--temperature") { Description = "Temperature of the structural teacher's KL.", DefaultValueFactory = _ => d.Temperature });
        var decay = new Option<string>("--coeff-decay") { Description = "Schedule of alpha_t, the one-hot label's weight: cos or linear.", DefaultValueFactory = _ => d.CoeffDecay };
        decay.AcceptOnlyFromAmong(Decays);
        var cosMax = Unit(new Option<double>("--cos-max") { Description = "alpha_t at epoch 0 (cos).", DefaultValueFactory = _ => d.CosMax });
        var cosMin = Unit(new Option<double>("--cos-min") { Description = "alpha_t approached at the end (cos).", DefaultValueFactory = _ => d.CosMin });
        var alphaT = Unit(new Option<double>("--alpha-t") { Description = "The release's --alpha_T (linear): alpha_t = 1 - alpha_T (e+1)/E.", DefaultValueFactory = _ => d.AlphaT });
        var model = new Option<string>("--classifier-type") { Description = $"Model: {string.Join(", ", MultiBranchModels.Names)}.", DefaultValueFactory = _ => d.ClassifierType };
        model.Validators.Add(r =>
        {
            var name = Value<string>(r);
            if (!MultiBranchModels.Names.Contains(name, StringComparer.OrdinalIgnoreCase))
            {
                r.AddError($"Unknown --classifier-type '{name}'. Known models: {string.Join(", ", MultiBranchModels.Names)}.");
            }
        });
        var dataType = new Option<string>("--data-type") { Description = "Data set: cifar100, cifar10 or fashion-mnist.", DefaultValueFactory = _ => d.DataType };
        dataType.AcceptOnlyFromAmong(DataTypes);
        var dataPath = new Option<string?>("--data-path") { Description = "Data folder (default: ./data for CIFAR, /usr/share/datasets/fashion-mnist for Fashion-MNIST)." };
        var noDownload = new Option<bool>("--no-download") { Description = "Fail instead of downloading CIFAR-100 when it is missing." };
        var experimentsDir = new Option<string>("--experiments-dir") { Description = "Folder for the runs' outputs.", DefaultValueFactory = _ => d.ExperimentsDir };
        var experimentsName = new Option<string?>("--experiments-name") { Description = "Name of this run's folder (default: <classifier>-<data>-seed<seed>)." };
        var resume = new Option<bool>("--resume") { Description = "Continue the run from <experiments-dir>/<name>/last.ckpt." };
        var overwrite = new Option<bool>("--overwrite") { Description = "Start afresh in a run folder that already holds a run; the old run is first moved aside to <name>.replaced-<time>, not deleted." };
        var threads = Positive(new Option<int>("--threads") { Description = "CPU threads for LibTorch (default: all cores). Results depend on it in the last bits: resume with the same count.", DefaultValueFactory = _ => d.Threads });
        var seed = new Option<long>("--seed") { Description = "Seed of the model initialisation, shuffling and augmentation.", DefaultValueFactory = _ => d.Seed };
        var device = new Option<string>("--device") { Description = "auto (CUDA when available), cpu or cuda.", DefaultValueFactory = _ => d.Device };
        device.AcceptOnlyFromAmong(Devices);
        var precision = new Option<string>("--precision")
        {
            Description = "Forward/backward format: auto (fp32; on CUDA with TF32), fp32, bf16 or fp16 (with loss scaling). bf16 and fp16 are opt-in: they have not yet been checked on a GPU.",
            DefaultValueFactory = _ => d.Precision,
        };
        precision.AcceptOnlyFromAmong(Precisions);
        var noTf32 = new Option<bool>("--no-tf32") { Description = "On CUDA, keep float32 matrix maths out of TF32." };
        var baseWidth = Positive(new Option<int>("--base-width") { Description = "Channels of the first ResNet stage (64 = reference).", DefaultValueFactory = _ => d.BaseWidth });
        var neckWidth = Positive(new Option<int>("--neck-width") { Description = "Channels of the branch neck (512 = reference).", DefaultValueFactory = _ => d.NeckWidth });
        var trainLimit = new Option<int?>("--train-limit") { Description = "Use only the first N training images (quick runs)." };
        var testLimit = new Option<int?>("--test-limit") { Description = "Use only the first N test images (quick runs)." };
        foreach (var limit in new[] { trainLimit, testLimit })
        {
            limit.Validators.Add(r =>
            {
                if (Value<int?>(r) is <= 0)
                {
                    r.AddError($"{r.Option.Name} must be greater than 0.");
                }
            });
        }

        var bestAfter = new Option<int?>("--best-after") { Description = "Best top-1 is taken over the epochs after the first N (default: two thirds of the run, as the release's 200 of 300)." };
        bestAfter.Validators.Add(r =>
        {
            if (Value<int?>(r) is < 0)
            {
                r.AddError("--best-after must be 0 or more.");
            }
        });
        var logInterval = Positive(new Option<int>("--log-interval") { Description = "Report progress every N steps.", DefaultValueFactory = _ => d.LogInterval });

        var root = new RootCommand("Reproduces DTSKD's CIFAR-100 ResNet-18 experiment (Dual Teachers for Self-Knowledge Distillation) with DTSKD.Core.")
        {
            lr, schedule, rate, wd, momentum, epochs, batch, evalBatch, hskd, backbone, b1, b2, b3, ce, kd, temperature, decay, cosMax, cosMin, alphaT,
            model, dataType, dataPath, noDownload, experimentsDir, experimentsName, resume, overwrite, seed, device, precision, noTf32, threads, baseWidth, neckWidth,
            trainLimit, testLimit, bestAfter, logInterval,
        };

        var result = root.Parse(args);
        if (result.Errors.Count > 0)
        {
            return (null, OneLine(result.Errors[0]), false);
        }

        if (args.Contains("--version"))
        {
            output.WriteLine(VersionText());
            return (null, null, true);
        }

        if (result.Action is System.CommandLine.Help.HelpAction)
        {
            result.Invoke(new InvocationConfiguration { Output = output });
            return (null, null, true);
        }

        var config = new ExperimentConfig
        {
            Lr = result.GetValue(lr), LrDecaySchedule = result.GetValue(schedule) ?? [], LrDecayRate = result.GetValue(rate),
            WeightDecay = result.GetValue(wd), Momentum = result.GetValue(momentum), Epochs = result.GetValue(epochs),
            BatchSize = result.GetValue(batch), EvalBatchSize = result.GetValue(evalBatch), Hskd = result.GetValue(hskd) == 1,
            BackboneWeight = result.GetValue(backbone), B1Weight = result.GetValue(b1), B2Weight = result.GetValue(b2), B3Weight = result.GetValue(b3),
            CeWeight = result.GetValue(ce), KdWeight = result.GetValue(kd), Temperature = result.GetValue(temperature),
            CoeffDecay = result.GetValue(decay)!, CosMax = result.GetValue(cosMax), CosMin = result.GetValue(cosMin), AlphaT = result.GetValue(alphaT),
            ClassifierType = result.GetValue(model)!.ToLowerInvariant(), DataType = result.GetValue(dataType)!, DataPath = result.GetValue(dataPath),
            Download = !result.GetValue(noDownload), ExperimentsDir = result.GetValue(experimentsDir)!, ExperimentsName = result.GetValue(experimentsName),
            Resume = result.GetValue(resume), Overwrite = result.GetValue(overwrite), Seed = result.GetValue(seed), Device = result.GetValue(device)!,
            Precision = result.GetValue(precision)!, Tf32 = !result.GetValue(noTf32), Threads = result.GetValue(threads), BaseWidth = result.GetValue(baseWidth),
            NeckWidth = result.GetValue(neckWidth), TrainLimit = result.GetValue(trainLimit), TestLimit = result.GetValue(testLimit),
            BestAfter = result.GetValue(bestAfter), LogInterval = result.GetValue(logInterval),
        };

        if (config.CosMin > config.CosMax)
        {
            return (null, $"--cos-min ({config.CosMin}) must not exceed --cos-max ({config.CosMax}).", false);
        }

        if (config.LrDecaySchedule.Any(m => m < 0))
        {
            return (null, "--lr-decay-schedule takes epoch indices >= 0.", false);
        }

        if (config.Resume && config.Overwrite)
        {
            return (null, "--resume and --overwrite exclude each other: continue the run, or start it afresh.", false);
        }

        return (config, null, false);
    }

    /// <summary>The package versions a run uses (DTSKD.Core and TorchSharp).</summary>
    public static string VersionText()
    {
        static string Version(Type t) =>
            t.Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
                .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion.Split('+')[0]
            ?? t.Assembly.GetName().Version?.ToString() ?? "unknown";
        return $"DTSKD.Core {Version(typeof(Core.DualTeacherLoss))}, TorchSharp {Version(typeof(TorchSharp.torch))}";
    }

    // System.CommandLine's messages can span lines and may not say which option they are about.
    private static string OneLine(ParseError error)
    {
        var message = string.Join(" ", error.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        var option = error.SymbolResult switch
        {
            OptionResult o => o.Option.Name,
            ArgumentResult { Parent: OptionResult o } => o.Option.Name,
            _ => null,
        };
        return option is null || message.Contains(option, StringComparison.Ordinal) ? message : $"{option}: {message}";
    }

    private static Option<T> Positive<T>(Option<T> option) where T : struct, IComparable<T> =>
        Check(option, v => v.CompareTo(default) > 0, "must be greater than 0");

    private static Option<T> NonNegative<T>(Option<T> option) where T : struct, IComparable<T> =>
        Check(option, v => v.CompareTo(default) >= 0, "must be 0 or more");

    private static Option<double> Unit(Option<double> option) =>
        Check(option, v => v is >= 0 and <= 1, "must be between 0 and 1");

    private static Option<T> Check<T>(Option<T> option, Func<T, bool> valid, string rule)
    {
        option.Validators.Add(r =>
        {
            var value = Value<T>(r);
            if (value is not null && !valid(value))
            {
                r.AddError($"{option.Name} {rule}; got {value}.");
            }
        });
        return option;
    }

    /// <summary>The option's value, or default when it did not parse (the parse error is reported on its own).</summary>
    private static T? Value<T>(OptionResult result)
    {
        try
        {
            return result.GetValueOrDefault<T>();
        }
        catch (InvalidOperationException)
        {
            return default;
        }
    }
}
