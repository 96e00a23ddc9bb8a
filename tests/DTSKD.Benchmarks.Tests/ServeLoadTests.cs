namespace DTSKD.Benchmarks.Tests;

/// <summary><c>serve-load</c>: the real server under good requests and bombs, and <c>predict --onnx</c> over many paths, as a user runs it.</summary>
public sealed class ServeLoadTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("dtskd-serve-load-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public async Task The_server_answers_every_good_request_beside_bombs_and_predict_answers_every_path_a_batch_at_a_time()
    {
        var report = Path.Combine(_dir.FullName, "serve-load.md");

        // 130 paths: two full batches of 64 and one of 2.
        var (code, output) = await BenchProcess.Run(["serve-load", "--requests", "40", "--seconds", "0", "--files", "130", "--bombs", "2", "--output", report]);

        code.Should().Be(0, output);
        var rows = File.ReadAllLines(report).Where(l => l.StartsWith("| alone |", StringComparison.Ordinal) || l.StartsWith("| beside 2 bombs |", StringComparison.Ordinal))
            .Select(l => l.Split('|', StringSplitOptions.TrimEntries)).ToList();
        rows.Select(r => (r[1], r[2])).Should().Equal(("alone", "16"), ("alone", "64"), ("beside 2 bombs", "16"), ("beside 2 bombs", "64"));
        rows.Take(2).Should().AllSatisfy(r => r[6].Should().Be("200 x40"));
        rows.Skip(2).Should().AllSatisfy(r =>
        {
            r[6].Should().MatchRegex(@"^200 x\d+$", "every good request beside the bombs is answered");
            r[7].Should().Be("200 x1, 400 x1", "the PNG bomb is decoded under the budget, the BMP refused from its header");
            double.Parse(r[8], System.Globalization.CultureInfo.InvariantCulture).Should().BeGreaterThan(0, "/health was probed");
        });
        rows.Should().AllSatisfy(r => double.Parse(r[9], System.Globalization.CultureInfo.InvariantCulture).Should().BeGreaterThan(50, "the server's own peak memory"));
        File.ReadAllText(report).Should().MatchRegex(@"`predict --onnx` over 130 image paths .*with the default --batch-size 64, first answer after \d+\.\d\d s, all 130 in \d+\.\d\d s, peak RSS \d+ MB; as one batch \(--batch-size 130");
    }

    [Theory]
    [InlineData("--bombs", "3", "error: --requests (2000) and --files (10000) must be 1 or more, --bombs (3) an even number from 0 (half PNGs, half BMPs), --seconds (20) from 0 to 3600.")]
    [InlineData("--requests", "0", "error: --requests must be 1 or more; got 0.")]
    [InlineData("--seconds", "-1", "error: --seconds must be 0 or more; got -1.")]
    public async Task Nonsense_sizes_are_one_line(string option, string value, string expected)
    {
        var (code, output) = await BenchProcess.Run(["serve-load", option, value]);

        code.Should().Be(2);
        output.Trim().Should().Be(expected);
    }
}
