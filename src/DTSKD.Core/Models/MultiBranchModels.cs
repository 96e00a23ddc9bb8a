namespace DTSKD.Core.Models;

/// <summary>The built-in multi-branch models by the reference release's names (its <c>--classifier_type</c>).</summary>
public static class MultiBranchModels
{
    private static readonly Dictionary<string, Func<MultiBranchModelOptions?, ResNetDtskd>> Factories = new(StringComparer.OrdinalIgnoreCase)
    {
        ["resnet18_dtskd"] = ResNetDtskd.ResNet18,
        ["resnet34_dtskd"] = ResNetDtskd.ResNet34,
    };

    /// <summary>The known names, in a stable order.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. Factories.Keys.Order(StringComparer.Ordinal)];

    /// <summary>Builds a model by name (case-insensitive).</summary>
    /// <param name="name">One of <see cref="Names"/>, for example <c>resnet18_dtskd</c>.</param>
    /// <param name="options">Size options; null for the reference (CIFAR-100).</param>
    /// <exception cref="ArgumentException">The name is unknown; the message lists the known names.</exception>
    public static ResNetDtskd Create(string name, MultiBranchModelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!Factories.TryGetValue(name, out var factory))
        {
            throw new ArgumentException($"Unknown model '{name}'. Known models: {string.Join(", ", Names)}.", nameof(name));
        }

        return factory(options);
    }
}
