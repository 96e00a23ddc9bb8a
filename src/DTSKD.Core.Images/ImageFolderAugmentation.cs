namespace DTSKD.Core.Images;

/// <summary>Which augmentation an image folder's splits come with.</summary>
public enum ImageFolderAugmentation
{
    /// <summary><see cref="ResizedCrop"/> for images of 96 pixels and more, <see cref="PadCropFlip"/> below.</summary>
    Auto,

    /// <summary>The recipe's: zero padding of an eighth of the side, a random crop and a flip (<see cref="Data.PadCropFlip"/>); images stored at the model's size.</summary>
    PadCropFlip,

    /// <summary>ImageNet's: a random resized crop and a flip, a centre crop for testing (<see cref="Data.ResizedCropFlip"/>); images stored at the model's size / 0.875.</summary>
    ResizedCrop,
}
