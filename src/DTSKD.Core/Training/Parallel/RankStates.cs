using static TorchSharp.torch;

namespace DTSKD.Core.Training;

/// <summary>
/// Every rank's serialised state of one kind (the objective's: each rank's historical teacher holds its own samples'
/// rows) on every rank, so that rank 0 can write them all into one checkpoint. Sizes travel first, then each rank's bytes
/// from that rank.
/// </summary>
internal static class RankStates
{
    public static byte[][] Gather(IProcessGroup group, Action<Stream> save)
    {
        using var stream = new MemoryStream();
        save(stream);
        var mine = stream.ToArray();
        var lengths = group.AllGather(mine.Length);
        var all = new byte[group.WorldSize][];
        for (var rank = 0; rank < group.WorldSize; rank++)
        {
            if (rank == group.Rank && group.WorldSize == 1)
            {
                all[rank] = mine;
                continue;
            }

            using var bytes = zeros((long)lengths[rank], ScalarType.Byte);
            if (rank == group.Rank)
            {
                mine.CopyTo(bytes.bytes);
            }

            group.Broadcast(bytes, rank);
            all[rank] = bytes.bytes.ToArray();
        }

        return all;
    }

    /// <summary>The checkpoint section that holds <paramref name="rank"/>'s objective ("objective" for rank 0, as a one-process checkpoint).</summary>
    public static string ObjectiveSection(int rank) => rank == 0 ? "objective" : $"objective.rank{rank}";
}
