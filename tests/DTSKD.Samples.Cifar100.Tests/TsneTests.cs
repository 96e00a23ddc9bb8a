using System.Text.Json;
using static TorchSharp.torch;

namespace DTSKD.Samples.Cifar100.Tests;

/// <summary>
/// The .NET t-SNE against scikit-learn's on the same features (eng/make-tsne-fixture.py: 500 Fashion-MNIST test images
/// as 32 principal components, sklearn 1.2.1's TSNE map and its trustworthiness).
/// </summary>
public sealed class TsneTests
{
    private static readonly string Folder = Path.Combine(AppContext.BaseDirectory, "TestData", "tsne");

    private static Tensor Read(string file, long columns)
    {
        var bytes = File.ReadAllBytes(Path.Combine(Folder, file));
        var values = new double[bytes.Length / 8];
        Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
        return tensor(values, ScalarType.Float64).reshape(-1, columns);
    }

    private static JsonElement Reference => JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "reference.json"))).RootElement;

    [Fact]
    public void Trustworthiness_is_scikit_learn_s_on_the_same_map()
    {
        using var features = Read("features.f64", 32);
        using var map = Read("sklearn-map.f64", 2);
        TsneMap.Trustworthiness(features, map).Should().BeApproximately(Reference.GetProperty("trustworthiness").GetDouble(), 1e-12);
        using var scrambled = map.index(randperm(map.shape[0], generator: new Generator(1)));
        TsneMap.Trustworthiness(features, scrambled).Should().BeLessThan(0.6, "a map whose points are shuffled keeps no neighbourhoods");
    }

    [Fact]
    public void The_map_keeps_neighbourhoods_as_well_as_scikit_learn_s_tsne_within_0_02()
    {
        using var features = Read("features.f64", 32);
        using var map = TsneMap.Embed(features, seed: 1);
        map.shape.Should().Equal(500, 2);
        map.isfinite().all().item<bool>().Should().BeTrue();
        var ours = TsneMap.Trustworthiness(features, map);
        ours.Should().BeGreaterThan(Reference.GetProperty("trustworthiness").GetDouble() - 0.02, $"ours {ours:F4}");
    }

    [Fact]
    public void Inputs_outside_its_range_are_refused_with_what_it_takes()
    {
        using var few = zeros(9, 4, ScalarType.Float64);
        var act = () => TsneMap.Embed(few).Dispose();
        act.Should().Throw<ArgumentException>().WithMessage("t-SNE takes [n, d] features with 10 <= n <= 10000; got [9, 4].*");
    }

    [Fact]
    public void Few_points_get_a_perplexity_they_can_have_and_a_map_that_keeps_their_neighbourhoods()
    {
        using var features = Read("features.f64", 32);
        using var twelve = features.narrow(0, 0, 12);
        TsneMap.PerplexityFor(12, 30).Should().BeApproximately(11 / 3.0, 1e-12);
        using var map = TsneMap.Embed(twelve, seed: 1);
        map.isfinite().all().item<bool>().Should().BeTrue();
        TsneMap.Trustworthiness(twelve, map, neighbours: 2).Should().BeGreaterThan(0.8);
    }

    [Fact]
    public void The_same_seed_gives_the_same_map_to_the_last_bit()
    {
        using var features = Read("features.f64", 32);
        using var some = features.narrow(0, 0, 200);
        using var first = TsneMap.Embed(some, iterations: 300, seed: 4);
        using var second = TsneMap.Embed(some, iterations: 300, seed: 4);
        first.equal(second).all().item<bool>().Should().BeTrue("the quadtree's forces are summed in one order whatever the threads did");
    }
}
