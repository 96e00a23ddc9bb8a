namespace DTSKD.Core.Training;

/// <summary>Who holds a <see cref="RunLock"/>.</summary>
/// <param name="ProcessId">The holder's process id.</param>
/// <param name="Host">The holder's machine name.</param>
/// <param name="SinceUtc">When it took the lock (UTC).</param>
public sealed record RunLockOwner(int ProcessId, string Host, DateTime SinceUtc);
