namespace DTSKD.Core.Images;

/// <summary>An image that could not be used, and why.</summary>
/// <param name="Path">The file.</param>
/// <param name="Reason">What is wrong with it.</param>
public sealed record BadImage(string Path, string Reason);
