namespace DTSKD.Core.Data;

/// <summary>The shape of one image: channels, height and width in pixels.</summary>
/// <param name="Channels">Colour channels (1 for grayscale, 3 for RGB).</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="Width">Width in pixels.</param>
public readonly record struct ImageShape(int Channels, int Height, int Width)
{
    /// <summary>Bytes of one uint8 image.</summary>
    public long Bytes => (long)Channels * Height * Width;

    /// <summary><c>CxHxW</c>, for messages.</summary>
    /// <returns>The shape as text.</returns>
    public override string ToString() => $"{Channels}x{Height}x{Width}";
}
