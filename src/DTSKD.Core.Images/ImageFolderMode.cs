namespace DTSKD.Core.Images;

/// <summary>How an image folder feeds the trainer.</summary>
public enum ImageFolderMode
{
    /// <summary>Cached when the decoded images fit the memory budget, streamed otherwise.</summary>
    Auto,

    /// <summary>Decoded once, in parallel, into a uint8 cache file that is memory-mapped and reused while the folder is unchanged; then read as from memory.</summary>
    Cached,

    /// <summary>Decoded on worker threads for every epoch, a few batches ahead of the model (a bounded queue), with flat memory.</summary>
    Streaming,
}
