using DTSKD.Benchmarks.Study;

namespace DTSKD.Benchmarks.Tests;

public sealed class StudyShardTests
{
    private static Func<string, string?> Env(params (string Name, string Value)[] values) =>
        name => values.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void The_shards_of_a_study_take_every_run_exactly_once()
    {
        var shards = Enumerable.Range(0, 3).Select(i => StudyShard.Resolve($"{i}/3", null, Env())).ToList();
        foreach (var position in Enumerable.Range(0, 10))
        {
            shards.Count(s => s.Takes(position)).Should().Be(1, $"run {position} belongs to one shard");
        }

        StudyShard.Resolve(null, null, Env()).Should().Be(StudyShard.Whole);
    }

    [Fact]
    public void Slurm_and_Kubernetes_name_the_shard_when_the_command_line_does_not()
    {
        StudyShard.Resolve(null, null, Env(("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_MIN", "4"), ("SLURM_ARRAY_TASK_COUNT", "3")))
            .Should().Match<StudyShard>(s => s.Index == 1 && s.Count == 3);
        StudyShard.Resolve(null, 4, Env(("JOB_COMPLETION_INDEX", "3"))).Should().Match<StudyShard>(s => s.Index == 3 && s.Count == 4);
        StudyShard.Resolve("0/2", null, Env(("JOB_COMPLETION_INDEX", "1"))).Index.Should().Be(0, "--shard wins over the environment");
    }

    [Theory]
    [InlineData("3/3", null, null, "--shard '3/3'")]
    [InlineData("a/3", null, null, "--shard 'a/3'")]
    [InlineData(null, null, "1", "pass --shards n")]
    [InlineData(null, 2, "2", "out of range")]
    public void A_malformed_shard_is_one_clear_line(string? shard, int? shards, string? index, string expected)
    {
        var act = () => StudyShard.Resolve(shard, shards, Env(index is null ? [] : [("JOB_COMPLETION_INDEX", index)]));
        act.Should().Throw<ArgumentException>().Which.Message.Should().Contain(expected);
    }
}
