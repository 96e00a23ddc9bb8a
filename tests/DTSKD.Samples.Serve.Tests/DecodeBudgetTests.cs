using System.Net;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using DTSKD.Testing;

namespace DTSKD.Samples.Serve.Tests;

/// <summary>
/// Decompression bombs under the pixel cap: weighed by their headers before decoding, refused when they could never fit
/// the server's decode budget or declare more pixel data than they hold, queued while the budget is spent, turned away
/// with 503 and Retry-After past the queue.
/// </summary>
[Collection(ServedModel.Collection)]
public sealed class DecodeBudgetTests : IDisposable
{
    // One 9999 x 9999 bomb (400 MB decoded) fits the large lane (seven eighths: 437.5 MB), two do not; nobody may wait.
    private const long Budget = 500L << 20;

    private readonly WebApplicationFactory<Program> _factory;
    private readonly HttpClient _client;

    public DecodeBudgetTests(ServedModel model)
    {
        Environment.SetEnvironmentVariable("Model__Path", model.ModelPath);
        Environment.SetEnvironmentVariable("Model__DecodeBudgetBytes", $"{Budget}");
        Environment.SetEnvironmentVariable("Model__QueueLimit", "0");
        _factory = new WebApplicationFactory<Program>().WithWebHostBuilder(b => b.UseSetting("Model:Path", model.ModelPath));
        _client = _factory.CreateClient();
    }

    public void Dispose()
    {
        _client.Dispose();
        _factory.Dispose();
        foreach (var name in new[] { "Model__Path", "Model__DecodeBudgetBytes", "Model__QueueLimit" })
        {
            Environment.SetEnvironmentVariable(name, null);
        }
    }

    [Fact]
    public async Task A_bmp_declaring_more_pixels_than_it_holds_is_refused_from_its_header()
    {
        var (status, body, _) = await Post(Bombs.Bmp(9999), "image/bmp");
        status.Should().Be(HttpStatusCode.BadRequest);
        body.Should().Contain("is truncated: its header declares 9999x9999 pixels, 299,970,000 bytes of pixel data, but the file holds 100");
    }

    [Fact]
    public async Task A_bomb_larger_than_the_whole_budget_is_refused_before_it_is_decoded()
    {
        var png = Bombs.Png(9999);
        png.Length.Should().BeLessThan(20_000, "a small upload that decodes to 400 MB");

        // Its own server, with a 100 MB budget (the host reads its settings when the first client is made).
        Environment.SetEnvironmentVariable("Model__DecodeBudgetBytes", $"{100L << 20}");
        try
        {
            using var tight = new WebApplicationFactory<Program>().WithWebHostBuilder(b => b.UseSetting("Model:Path", Environment.GetEnvironmentVariable("Model__Path")));
            using var client = tight.CreateClient();
            using var content = new ByteArrayContent(png);
            content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
            using var response = await client.PostAsync("/classify", content);
            response.StatusCode.Should().Be(HttpStatusCode.RequestEntityTooLarge);
            (await response.Content.ReadAsStringAsync()).Should().Contain("more than one decode may take (91,750,400 bytes, seven eighths of Model:DecodeBudgetBytes)");
        }
        finally
        {
            Environment.SetEnvironmentVariable("Model__DecodeBudgetBytes", $"{Budget}");
        }
    }

    [Fact]
    public async Task Bombs_past_the_budget_and_an_empty_queue_get_503_with_retry_after_and_the_rest_are_answered()
    {
        var png = Bombs.Png(9999);
        var answers = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Post(png, "image/png")));
        answers.Should().OnlyContain(a => a.Status == HttpStatusCode.OK || a.Status == HttpStatusCode.ServiceUnavailable);
        answers.Should().Contain(a => a.Status == HttpStatusCode.OK, "the budget holds one such decode at a time");
        var refused = answers.Where(a => a.Status == HttpStatusCode.ServiceUnavailable).ToList();
        refused.Should().NotBeEmpty("six 400 MB decodes cannot share a 437.5 MB lane, and none may wait");
        refused.Should().OnlyContain(a => a.RetryAfter == "1" && a.Body.Contains("its queue is full; retry after a second"));

        // Spent budget comes back: a good request afterwards is answered.
        (await Post(png, "image/png")).Status.Should().Be(HttpStatusCode.OK);
    }

    private async Task<(HttpStatusCode Status, string Body, string? RetryAfter)> Post(byte[] bytes, string type)
    {
        using var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue(type);
        using var response = await _client.PostAsync("/classify", content);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), response.Headers.RetryAfter?.ToString());
    }
}
