namespace DTSKD.Samples.Serve;

/// <summary>The service's settings: the <c>Model</c> section of appsettings.json, or <c>Model__Path=...</c> in the environment.</summary>
public sealed class ServeOptions
{
    /// <summary>The .onnx file exported by DTSKD.Core.Onnx (the CIFAR sample's <c>export --format onnx</c>).</summary>
    public string Path { get; set; } = "";

    /// <summary>The largest image accepted, in bytes.</summary>
    public long MaxImageBytes { get; set; } = 10 * 1024 * 1024;

    /// <summary>How many classes an answer lists, unless the request asks (<c>?top=k</c>).</summary>
    public int Top { get; set; } = 5;
}
