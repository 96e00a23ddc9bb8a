namespace DTSKD.Core.Tests;
public class ProbeTests { [Fact] public void Runs() => Probe.Run().Should().Be(3f); }
