using System.IO.Compression;
using DTSKD.Core.Interop;
using DTSKD.Core.Models;
using TorchSharp.PyBridge;

namespace DTSKD.Core.Tests;

public sealed class InteropTests : IDisposable
{
    private static readonly MultiBranchModelOptions Small = new() { ClassCount = 10, BaseWidth = 16, NeckWidth = 16 };
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-interop-");

    public void Dispose() => _dir.Delete(recursive: true);

    private static ResNetDtskd Model(int seed)
    {
        manual_seed(seed);
        var model = ResNetDtskd.ResNet18(Small);
        return model;
    }

    private static bool Same(Tensor a, Tensor b)
    {
        using var eq = a.eq(b);
        using var all = eq.all();
        return a.shape.SequenceEqual(b.shape) && all.item<bool>();
    }

    private static void TrainABit(ResNetDtskd model)
    {
        // Moves BatchNorm statistics and num_batches_tracked away from their initial values.
        using var scope = NewDisposeScope();
        model.train();
        using var _ = model.call(randn(4, 3, 16, 16));
        model.eval();
    }

    [Theory]
    [InlineData("weights.pt")]
    [InlineData("weights.pth")]
    [InlineData("weights.safetensors")]
    public void Round_trip_gives_the_same_state_and_the_same_logits(string file)
    {
        using var source = Model(1);
        TrainABit(source);
        using var target = Model(2);
        var path = Path.Combine(_dir.FullName, file);

        PyTorchWeights.Save(source, path);
        PyTorchWeights.Load(target, path);

        var a = source.state_dict();
        var b = target.state_dict();
        b.Keys.Should().BeEquivalentTo(a.Keys);
        a.Should().OnlyContain(kv => kv.Value.dtype == b[kv.Key].dtype && Same(kv.Value, b[kv.Key]), "every tensor travels exactly");
        target.eval();
        using var scope = NewDisposeScope();
        var x = randn(2, 3, 16, 16);
        using var oa = source.call(x);
        using var ob = target.call(x);
        for (var h = 0; h < 4; h++)
        {
            oa.Heads[h].allclose(ob.Heads[h], rtol: 0, atol: 0).Should().BeTrue();
        }

        Directory.GetFiles(_dir.FullName).Should().ContainSingle("no temporary file is left");
    }

    [Fact]
    public void Parameters_that_are_views_into_a_flat_buffer_are_saved_as_tensors_of_their_own()
    {
        // Half-precision training keeps its master weights in flat buffers and rebinds every parameter into one: the
        // parameters are views at non-zero offsets. torch.load failed on such files before the fix.
        using var train = TrainerTests.Halves(64, 61);
        manual_seed(4);
        using var model = ResNetDtskd.ResNet18(TrainerTests.TinyModel);
        var path = Path.Combine(_dir.FullName, "trained.pth");
        var safetensors = Path.Combine(_dir.FullName, "trained.safetensors");
        using (var trainer = new Training.Trainer(model, CrossEntropyObjective.AllHeads(model), train, train, new Data.PadCropFlip([0.4], [0.3]),
                   new Training.TrainerOptions { Epochs = 1, BatchSize = 16, Milestones = [], Precision = Training.TrainingPrecision.BFloat16 }))
        {
            trainer.Run();
            model.parameters().Should().Contain(p => p.storage_offset() > 0, "the trained model's parameters live in the master weights' flat buffer");
            PyTorchWeights.Save(model, path);
            PyTorchWeights.Save(model, safetensors);
            using var zip = ZipFile.OpenRead(path);
            var storages = zip.Entries.Where(e => e.FullName.Contains("/data/", StringComparison.Ordinal)).Sum(e => e.Length);
            storages.Should().Be(model.state_dict().Values.Sum(t => t.NumberOfElements * t.ElementSize), "each storage holds exactly its tensor");
            foreach (var file in new[] { path, safetensors })
            {
                using var fresh = ResNetDtskd.ResNet18(TrainerTests.TinyModel);
                PyTorchWeights.Load(fresh, file);
                var saved = model.state_dict();
                fresh.state_dict().Should().OnlyContain(kv => Same(kv.Value.to(saved[kv.Key].dtype), saved[kv.Key]), $"{Path.GetExtension(file)} loads back exactly");
            }
        }
    }

    [Fact]
    public void The_torch_save_file_has_pytorchs_zip_and_pickle_layout()
    {
        using var model = Model(3);
        var path = Path.Combine(_dir.FullName, "model.pth");
        PyTorchWeights.Save(model, path);

        using var zip = ZipFile.OpenRead(path);
        var names = zip.Entries.Select(e => e.FullName).ToList();
        names.Should().Contain(n => n.EndsWith("/data.pkl", StringComparison.Ordinal));
        names.Should().Contain(n => n.EndsWith("/version", StringComparison.Ordinal));
        names.Count(n => n.Contains("/data/", StringComparison.Ordinal)).Should().Be(model.state_dict().Count, "one storage per tensor");
        PyTorchWeights.Describe(path)["layer2.0.downsample.0.weight"].Shape.Should().Equal(32, 16, 1, 1);
        PyTorchWeights.Describe(path)["bn1.num_batches_tracked"].DType.Should().Be(ScalarType.Int64);
    }

    [Fact]
    public void A_state_dict_pickled_in_pytorchs_layout_loads_into_the_reference_model()
    {
        // What the PyTorch release's torch.save(model.state_dict()) produces, built here with the pickler.
        using var reference = ResNetDtskd.ResNet18();
        var state = reference.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.dtype == ScalarType.Int64 ? full([], 7L, ScalarType.Int64) : full(kv.Value.shape, 0.25f));
        var path = Path.Combine(_dir.FullName, "release.pth");
        PyTorchPickler.PickleStateDict(path, state);

        using var model = ResNetDtskd.ResNet18();
        PyTorchWeights.Load(model, path);

        model.state_dict()["fuse_3.1.running_var"].data<float>().ToArray().Should().AllBeEquivalentTo(0.25f);
        model.state_dict()["layer4.1.bn2.num_batches_tracked"].item<long>().Should().Be(7);
        foreach (var t in state.Values)
        {
            t.Dispose();
        }
    }

    [Fact]
    public void Missing_extra_and_misshaped_entries_are_listed_and_nothing_is_loaded()
    {
        using var model = Model(4);
        using var other = Model(5);
        var state = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        state["fc.bias"].Dispose();
        state.Remove("fc.bias");
        state["extra.weight"] = zeros(3);
        state["conv1.weight"].Dispose();
        state["conv1.weight"] = zeros(4, 3, 5, 5);
        var path = Path.Combine(_dir.FullName, "bad.safetensors");
        Safetensors.SaveStateDict(path, state);
        var before = other.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());

        var act = () => PyTorchWeights.Load(other, path);

        act.Should().Throw<InvalidDataException>()
            .WithMessage("*3 differences*missing fc.bias [10]*unexpected extra.weight [3]*conv1.weight: file [4, 3, 5, 5], module [16, 3, 3, 3]*");
        other.state_dict().Should().OnlyContain(kv => Same(kv.Value, before[kv.Key]), "a failed load changes nothing");
        foreach (var t in state.Values.Concat(before.Values))
        {
            t.Dispose();
        }
    }

    [Fact]
    public void Unreadable_files_are_clear_errors()
    {
        using var model = Model(6);
        var garbage = Path.Combine(_dir.FullName, "garbage.pt");
        File.WriteAllText(garbage, "not a pickle");
        ((Action)(() => PyTorchWeights.Load(model, garbage))).Should().Throw<InvalidDataException>().WithMessage($"'{garbage}' is not a torch.save file: torch.save writes a zip archive*");

        // A zip archive that is not torch.save's.
        var zip = Path.Combine(_dir.FullName, "other.pth");
        using (var archive = ZipFile.Open(zip, ZipArchiveMode.Create))
        {
            using var writer = new StreamWriter(archive.CreateEntry("readme.txt").Open());
            writer.Write("hello");
        }

        ((Action)(() => PyTorchWeights.Load(model, zip))).Should().Throw<InvalidDataException>().WithMessage($"*'{zip}' could not be read as a torch.save state-dict file*");
        ((Action)(() => PyTorchWeights.Load(model, Path.Combine(_dir.FullName, "none.pt")))).Should().Throw<FileNotFoundException>();
    }

    private static string Refusal(string path)
    {
        using var model = Model(7);
        var message = ((Action)(() => PyTorchWeights.Load(model, path))).Should().Throw<InvalidDataException>().Which.Message;
        message.Should().NotContain("\n").And.Contain(path);
        return message;
    }

    [Fact]
    public void Weight_files_that_would_load_and_then_fail_are_refused_naming_what_is_wrong()
    {
        // Non-finite weights, in both formats: the tensor is named.
        using (var model = Model(8))
        {
            using (no_grad())
            {
                model.named_parameters().Single(p => p.name == "layer1.0.conv1.weight").parameter.fill_(float.NaN);
            }

            var nan = Path.Combine(_dir.FullName, "nan.pth");
            PyTorchWeights.Save(model, nan);
            Refusal(nan).Should().Be($"'{nan}': tensor 'layer1.0.conv1.weight' holds NaN or infinite values; the weights are damaged (save them again from a network that computes finite outputs).");
            var nanSafe = Path.Combine(_dir.FullName, "nan.safetensors");
            PyTorchWeights.Save(model, nanSafe);
            Refusal(nanSafe).Should().Contain("tensor 'layer1.0.conv1.weight' holds NaN or infinite values");
        }

        // A safetensors header that claims more than the file holds, checked before anything is allocated.
        string Safetensors(string name, string header, int data = 4)
        {
            var path = Path.Combine(_dir.FullName, name);
            var json = System.Text.Encoding.UTF8.GetBytes(header);
            File.WriteAllBytes(path, [.. BitConverter.GetBytes((ulong)json.Length), .. json, .. new byte[data]]);
            return path;
        }

        var liar = Path.Combine(_dir.FullName, "liar.safetensors");
        File.WriteAllBytes(liar, [.. BitConverter.GetBytes(2UL << 30), .. "{}"u8.ToArray(), 0, 0, 0]);
        Refusal(liar).Should().Be($"'{liar}' is not a safetensors file: its header claims 2147483648 bytes, but the file has 5 after the length.");
        var huge = Safetensors("huge.safetensors", """{"w":{"dtype":"F32","shape":[1000000000000,1000000000000],"data_offsets":[0,4]}}""");
        Refusal(huge).Should().Contain("tensor 'w' has the shape [1000000000000,1000000000000], which no tensor of this file can hold");
        var negative = Safetensors("negative.safetensors", """{"w":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,4]}}""");
        Refusal(negative).Should().Contain("tensor 'w' has the shape [-1,4]");
        var beyond = Safetensors("beyond.safetensors", """{"w":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}""");
        Refusal(beyond).Should().Contain("tensor 'w' claims the bytes [0,4000] of a data section of 4");

        // A torch.save archive cut short, and a folder named like a weights file.
        using (var model = Model(9))
        {
            var whole = Path.Combine(_dir.FullName, "whole.pth");
            PyTorchWeights.Save(model, whole);
            var cut = Path.Combine(_dir.FullName, "cut.pth");
            File.WriteAllBytes(cut, File.ReadAllBytes(whole)[..(int)(new FileInfo(whole).Length / 2)]);
            Refusal(cut).Should().StartWith($"'{cut}' is a truncated or damaged torch.save archive (").And.EndWith("); save the state dict again.");
        }

        var folder = Directory.CreateDirectory(Path.Combine(_dir.FullName, "x.pth")).FullName;
        Refusal(folder).Should().Be($"'{folder}' is a folder, not a weights file.");
    }
}
