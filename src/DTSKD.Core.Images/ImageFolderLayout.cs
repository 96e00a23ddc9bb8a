namespace DTSKD.Core.Images;

/// <summary>How an image folder's test split was found.</summary>
public enum ImageFolderLayout
{
    /// <summary><c>root/train/&lt;class&gt;</c> and <c>root/val/&lt;class&gt;</c>.</summary>
    TrainVal,

    /// <summary><c>root/train/&lt;class&gt;</c> and <c>root/test/&lt;class&gt;</c>.</summary>
    TrainTest,

    /// <summary><c>root/&lt;class&gt;</c> only: a seeded, stratified share of each class is held out for testing.</summary>
    HoldOut,
}
