using DTSKD.Core.Data;
using DTSKD.Core.Models;
using DTSKD.Core.Training;

namespace DTSKD.Core.Tests;

public sealed class MixedPrecisionTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-amp-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public void The_scaler_skips_an_overflowing_step_and_halves_its_scale()
    {
        using var scaler = new DynamicLossScaler(CPU, initialScale: 1024, growthInterval: 3);
        using var grads = tensor(new float[] { 2048, 4096, float.PositiveInfinity });

        using var overflow = scaler.Unscale(grads);
        overflow.item<bool>().Should().BeTrue();
        scaler.Update(overflow);
        scaler.Scale.Should().Be(512);

        using var finite = tensor(new float[] { 512, -1024 });
        using var ok = scaler.Unscale(finite);
        ok.item<bool>().Should().BeFalse();
        finite.data<float>().ToArray().Should().Equal(1f, -2f);
        using var nan = tensor(new float[] { float.NaN });
        using var bad = scaler.Unscale(nan);
        bad.item<bool>().Should().BeTrue("NaN counts as an overflow too");
    }

    [Fact]
    public void The_scale_grows_after_the_growth_interval_of_good_steps()
    {
        using var scaler = new DynamicLossScaler(CPU, initialScale: 8, growthFactor: 2, backoffFactor: 0.5, growthInterval: 3);
        using var good = tensor(false);
        using var bad = tensor(true);
        var scales = new List<double>();
        foreach (var overflow in new[] { good, good, good, good, bad, good, good, good })
        {
            scaler.Update(overflow);
            scales.Add(scaler.Scale);
        }

        // Grows on the 3rd good step in a row; an overflow halves it and restarts the count.
        scales.Should().Equal(8, 8, 16, 16, 8, 8, 8, 16);
        using var loss = tensor(1.5f);
        using var scaled = scaler.ScaleLoss(loss);
        scaled.item<float>().Should().Be(24f);
    }

    [Fact]
    public void An_overflowing_float16_step_leaves_masters_and_the_optimizer_state_untouched()
    {
        manual_seed(1);
        using var model = ResNetDtskd.ResNet18(new MultiBranchModelOptions { ClassCount = 4, BaseWidth = 16, NeckWidth = 16 });
        using var precision = new PrecisionPolicy(TrainingPrecision.Float16, CPU, allowTf32: true);
        using var sgd = optim.SGD(precision.Prepare(model), 0.1, 0.9, 0, 5e-4, nesterov: true);
        var names = model.named_parameters().Select(p => p.name).ToHashSet();
        var masters = precision.CheckpointState(model).Where(kv => names.Contains(kv.Key)).ToDictionary();
        var before = masters.ToDictionary(kv => kv.Key, kv => kv.Value.clone());

        using (var scope = NewDisposeScope())
        {
            precision.ZeroGradients(sgd);
            using var output = model.call(randn(2, 3, 16, 16).to(ScalarType.Float16));
            precision.BackwardAndStep(output.Backbone.to(ScalarType.Float32).sum().mul(float.PositiveInfinity), sgd);
        }

        masters.Should().OnlyContain(kv => kv.Value.allclose(before[kv.Key], 0, 0, false), "the step was skipped");
        sgd.state_dict().State.Select(s => ((TorchSharp.Modules.SGD.State)s).momentum_buffer).Should().OnlyContain(b => ReferenceEquals(b, null), "no momentum was accumulated");

        // A finite step then moves the masters, and the half weights follow them.
        using (var scope = NewDisposeScope())
        {
            precision.ZeroGradients(sgd);
            using var output = model.call(randn(2, 3, 16, 16).to(ScalarType.Float16));
            precision.BackwardAndStep(output.Backbone.to(ScalarType.Float32).mean().mul(1e-3), sgd);
        }

        masters["conv1.weight"].allclose(before["conv1.weight"], 0, 0, false).Should().BeFalse();
        using var rounded = masters["conv1.weight"].to(ScalarType.Float16);
        model.state_dict()["conv1.weight"].allclose(rounded, 0, 0, false).Should().BeTrue();
        foreach (var t in before.Values)
        {
            t.Dispose();
        }
    }

    [Fact]
    public void Any_optimizer_steps_the_float32_masters_with_the_gathered_gradients()
    {
        manual_seed(2);
        using var model = ResNetDtskd.ResNet18(new MultiBranchModelOptions { ClassCount = 4, BaseWidth = 16, NeckWidth = 16 });
        using var precision = new PrecisionPolicy(TrainingPrecision.BFloat16, CPU, allowTf32: true);
        var parameters = precision.Prepare(model);
        var state = model.state_dict();
        state["conv1.weight"].dtype.Should().Be(ScalarType.BFloat16);
        state["fc_b2.bias"].dtype.Should().Be(ScalarType.BFloat16);
        state["bn1.weight"].dtype.Should().Be(ScalarType.Float32);
        state["fuse_1.1.running_var"].dtype.Should().Be(ScalarType.Float32);
        parameters.Should().HaveCount(model.parameters().Count()).And.OnlyContain(p => p.dtype == ScalarType.Float32);

        // Plain SGD, lr 0.5: each master moves by exactly -0.5 times the float32 copy of its half parameter's gradient.
        using var sgd = optim.SGD(parameters, 0.5);
        var before = parameters.Select(p => p.detach().clone()).ToList();
        precision.ZeroGradients(sgd);
        using (var scope = NewDisposeScope())
        {
            using var output = model.call(randn(4, 3, 16, 16).to(ScalarType.BFloat16));
            output.Backbone.dtype.Should().Be(ScalarType.BFloat16);
            precision.BackwardAndStep(output.Backbone.to(ScalarType.Float32).sum(), sgd);
        }

        var live = model.named_parameters().ToList();
        for (var i = 0; i < parameters.Count; i++)
        {
            using var expected = before[i].add(live[i].parameter.grad!.to(ScalarType.Float32), alpha: -0.5);
            parameters[i].allclose(expected, 0, 0, false).Should().BeTrue(live[i].name);
            using var rounded = parameters[i].to(live[i].parameter.dtype);
            live[i].parameter.allclose(rounded, 0, 0, false).Should().BeTrue($"{live[i].name} is its master, rounded");
        }

        before.ForEach(t => t.Dispose());
    }

    [Fact]
    public void Disposing_the_trainer_gives_the_model_back_in_float32_with_the_master_weights()
    {
        using var train = TrainerTests.Halves(64, 31);
        manual_seed(3);
        using var model = ResNetDtskd.ResNet18(TrainerTests.TinyModel);
        Tensor master;
        var path = Path.Combine(_dir.FullName, "bf16.ckpt");
        using (var trainer = new Trainer(model, CrossEntropyObjective.AllHeads(model), train, train, new PadCropFlip([0.4], [0.3]), new TrainerOptions
               {
                   Epochs = 1, BatchSize = 16, Precision = TrainingPrecision.BFloat16, Milestones = [],
               }))
        {
            trainer.Run();
            trainer.SaveCheckpoint(path);
            model.state_dict()["conv1.weight"].dtype.Should().Be(ScalarType.BFloat16);
            master = trainer.Optimizer.ParamGroups.Cast<TorchSharp.Modules.ParamGroup>().SelectMany(g => g.Parameters)
                .First(p => p.shape.SequenceEqual(new long[] { 16, 1, 3, 3 })).detach().clone();
        }

        model.state_dict().Values.Where(t => t.is_floating_point()).Should().OnlyContain(t => t.dtype == ScalarType.Float32);
        model.parameters().Should().OnlyContain(p => p.storage_offset() == 0, "every parameter has storage of its own again");
        model.state_dict()["conv1.weight"].allclose(master, 0, 0, false).Should().BeTrue("the float32 master, not its bfloat16 rounding");
        using var roundTrip = master.to(ScalarType.BFloat16).to(ScalarType.Float32);
        roundTrip.allclose(master, 0, 0, false).Should().BeFalse("the master carries more precision than bfloat16");

        // The checkpoint holds the same float32 model.
        using var loaded = ResNetDtskd.ResNet18(TrainerTests.TinyModel);
        TrainerCheckpoint.LoadModel(path, loaded).Precision.Should().Be(TrainingPrecision.BFloat16);
        loaded.state_dict().Should().OnlyContain(kv => kv.Value.allclose(model.state_dict()[kv.Key], 0, 0, false));
        master.Dispose();
    }

    [Theory]
    [InlineData(TrainingPrecision.BFloat16, "sgd", false)]
    [InlineData(TrainingPrecision.Float16, "sgd", false)]
    [InlineData(TrainingPrecision.BFloat16, "adam", false)]
    [InlineData(TrainingPrecision.Float16, "adamw", false)]
    [InlineData(TrainingPrecision.BFloat16, "sgd", true)]
    [InlineData(TrainingPrecision.Float32, "sgd", true)]
    [InlineData(TrainingPrecision.Float32, "adam", true)]
    public void Half_precision_and_channels_last_training_learns_and_resumes_exactly_on_cpu(TrainingPrecision precision, string optimizer, bool channelsLast)
    {
        using var train = TrainerTests.Halves(256, 21);
        using var test = TrainerTests.Halves(64, 22);
        var gray = new PadCropFlip([0.4], [0.3], padding: 1);
        TrainerOptions Options(string? dir = null) => new()
        {
            Epochs = 3, BatchSize = 16, EvalBatchSize = 64, LearningRate = 0.05, Milestones = [2], BestAfterEpoch = 1, LogInterval = 4, Seed = 5,
            Precision = precision, CheckpointDirectory = dir, ChannelsLast = channelsLast,
            Optimizer = optimizer switch
            {
                "adam" => parameters => optim.Adam(parameters, 0.01),
                "adamw" => parameters => optim.AdamW(parameters, 0.01, weight_decay: 0.01),
                _ => null,
            },
        };

        TrainingResult Run(string? dir, int modelSeed, string? resume, CancellationToken token = default, TrainerCallback? callback = null)
        {
            manual_seed(modelSeed);
            using var model = ResNetDtskd.ResNet18(TrainerTests.TinyModel);
            using var loss = DualTeacherLoss.For(model, train.Count, TrainerTests.Learnable);
            using var trainer = new Trainer(model, loss, train, test, gray, Options(dir));
            trainer.Optimizer.GetType().Name.Should().Be(optimizer switch { "adam" => "Adam", "adamw" => "AdamW", _ => "SGD" });
            if (callback is not null)
            {
                trainer.Callbacks.Add(callback);
            }

            if (resume is not null)
            {
                trainer.LoadCheckpoint(resume);
            }

            return trainer.Run(token);
        }

        var full = Run(null, 1, null);
        full.Metrics[^1].BackboneTop1.Should().BeGreaterThan(90, $"{precision} training learns the separable problem");

        var dir = Path.Combine(_dir.FullName, $"{precision}{optimizer}{channelsLast}");
        using var cts = new CancellationTokenSource();
        Run(dir, 1, null, cts.Token, new TestCallback { Progress = p => { if (p.Epoch == 1 && p.Step == 4) { cts.Cancel(); } } });
        var resumed = Run(null, 7, Path.Combine(dir, "last.ckpt"));

        resumed.Metrics.Should().BeEquivalentTo(full.Metrics, o => o.WithStrictOrdering().Excluding(m => m.ImagesPerSecond).Excluding(m => m.TrainSeconds).Excluding(m => m.EpochSeconds));
    }
}
