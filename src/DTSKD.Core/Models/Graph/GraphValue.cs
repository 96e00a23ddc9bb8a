namespace DTSKD.Core.Models;

/// <summary>A tensor inside a <see cref="LayerGraph"/>: an opaque handle with the channel count (dimension 1) it carries.</summary>
/// <param name="Id">The graph's own number for the value.</param>
/// <param name="Channels">Its size in dimension 1: channels of an image map, features of a vector.</param>
public readonly record struct GraphValue(int Id, long Channels);
