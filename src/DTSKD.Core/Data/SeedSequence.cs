namespace DTSKD.Core.Data;

/// <summary>
/// Derives independent 64-bit seeds from a run seed and a position (epoch, step, stream), so every random
/// draw of a run is a pure function of where it happens. That makes a resumed run draw exactly what an
/// uninterrupted one would, with no generator state to save.
/// </summary>
internal static class SeedSequence
{
    public static ulong Derive(long seed, long epoch, long step, ulong stream)
    {
        var x = Mix((ulong)seed ^ (stream * 0x9E3779B97F4A7C15UL));
        x = Mix(x ^ (ulong)epoch);
        return Mix(x ^ ((ulong)step * 0xD1B54A32D192ED03UL));
    }

    // SplitMix64's finaliser: a bijective mixing of 64 bits.
    private static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
