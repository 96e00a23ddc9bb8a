namespace DTSKD.Core.Images;

/// <summary>One image file a folder's splits read: what identifies it, so that a run can tell later whether its folder is still the same.</summary>
/// <param name="RelativePath">The file relative to the folder's root, with '/' separators.</param>
/// <param name="Split">"train" or "test".</param>
/// <param name="ClassName">Its class (its class folder's name).</param>
/// <param name="Size">Its size in bytes when the folder was read.</param>
/// <param name="ModifiedUtc">Its last write time then.</param>
public sealed record ImageFolderFile(string RelativePath, string Split, string ClassName, long Size, DateTime ModifiedUtc);
