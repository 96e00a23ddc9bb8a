using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using SkiaSharp;

namespace DTSKD.Samples.Serve.Tests;

/// <summary>The serving sample over real HTTP requests (an in-memory test server running the app's own Program).</summary>
[Collection(ServedModel.Collection)]
public sealed class ClassifyTests : IDisposable
{
    private readonly ServedModel _model;
    private readonly WebApplicationFactory<Program> _factory;
    private readonly HttpClient _client;

    public ClassifyTests(ServedModel model)
    {
        _model = model;

        // Program reads its configuration while the host is built; the environment is what it sees first.
        Environment.SetEnvironmentVariable("Model__Path", model.ModelPath);
        Environment.SetEnvironmentVariable("Model__MaxImageBytes", "200000");
        _factory = new WebApplicationFactory<Program>().WithWebHostBuilder(b => b.UseSetting("Model:Path", model.ModelPath));
        _client = _factory.CreateClient();
    }

    public void Dispose()
    {
        _client.Dispose();
        _factory.Dispose();
        Environment.SetEnvironmentVariable("Model__Path", null);
        Environment.SetEnvironmentVariable("Model__MaxImageBytes", null);
    }

    private static ByteArrayContent Image(byte[] bytes, string type = "image/png")
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue(type);
        return content;
    }

    private async Task<(HttpStatusCode Status, string Body)> Post(HttpContent content, string query = "")
    {
        using var response = await _client.PostAsync("/classify" + query, content);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Health_answers_with_the_model_it_serves()
    {
        using var response = await _client.GetAsync("/health");
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        (await response.Content.ReadAsStringAsync()).Should().Contain("\"status\":\"ok\"").And.Contain("resnet18_dtskd").And.Contain("\"classes\":10");
    }

    [Fact]
    public async Task Health_answers_head_as_it_answers_get()
    {
        using var request = new HttpRequestMessage(HttpMethod.Head, "/health");
        using var response = await _client.SendAsync(request);
        response.StatusCode.Should().Be(HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_good_image_gets_the_top_1_of_predict_raw_or_as_a_form()
    {
        foreach (var (path, top1) in _model.Images)
        {
            using var response = await _client.PostAsync("/classify?top=3", Image(await File.ReadAllBytesAsync(path)));
            response.StatusCode.Should().Be(HttpStatusCode.OK);
            var answer = await response.Content.ReadFromJsonAsync<ClassifyResponse>();
            answer!.Predictions.Should().HaveCount(3);
            answer.Predictions[0].Label.Should().Be(top1, $"{Path.GetFileName(path)} is ranked as TorchSharp ranks it");
            answer.Predictions.Sum(p => p.Probability).Should().BeLessThanOrEqualTo(1.0 + 1e-9);
            answer.Predictions.Select(p => p.Probability).Should().BeInDescendingOrder();
        }

        using var form = new MultipartFormDataContent();
        form.Add(Image(await File.ReadAllBytesAsync(_model.Images[0].Path)), "image", "test0.png");
        using var formResponse = await _client.PostAsync("/classify", form);
        formResponse.StatusCode.Should().Be(HttpStatusCode.OK);
        (await formResponse.Content.ReadFromJsonAsync<ClassifyResponse>())!.Predictions[0].Label.Should().Be(_model.Images[0].Top1);
    }

    [Theory]
    [InlineData("GET", "/classify", HttpStatusCode.MethodNotAllowed, "{\"error\":\"'GET /classify' is not allowed: /classify takes POST.\"}")]
    [InlineData("DELETE", "/health", HttpStatusCode.MethodNotAllowed, "{\"error\":\"'DELETE /health' is not allowed: /health takes GET, HEAD.\"}")]
    [InlineData("GET", "/predict", HttpStatusCode.NotFound, "{\"error\":\"Nothing is served at 'GET /predict': POST an image to /classify, or GET /health.\"}")]
    public async Task A_path_or_method_nothing_serves_gets_its_status_with_a_json_error(string method, string path, HttpStatusCode status, string body)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        using var response = await _client.SendAsync(request);

        response.StatusCode.Should().Be(status);
        response.Content.Headers.ContentType!.MediaType.Should().Be("application/json");
        (await response.Content.ReadAsStringAsync()).Should().Be(body);
    }

    [Fact]
    public async Task Bad_requests_get_400_with_a_message_never_500()
    {
        var large = LargeImage();
        large.Length.Should().BeGreaterThan(200000, "the test image must exceed the configured cap");
        using var emptyForm = new MultipartFormDataContent { { new StringContent("x"), "note" } };
        var cases = new (string What, HttpContent Content, string Query, string Message)[]
        {
            ("an empty body", Image([]), "", "The request has no image"),
            ("bytes that are no image", Image("hello, these are no pixels"u8.ToArray()), "", "is not an image SkiaSharp can read"),
            ("a truncated PNG", Image((await File.ReadAllBytesAsync(_model.Images[0].Path))[..40]), "", "is truncated"),
            ("an image above the size cap", Image(large), "", "the limit is 200000"),
            ("a wrong content type", new StringContent("{\"image\": 1}", System.Text.Encoding.UTF8, "application/json"), "", "Content-Type 'application/json' is not an image"),
            ("a form without the image field", emptyForm, "", "The form has no 'image' file field"),
            ("top=0", Image(await File.ReadAllBytesAsync(_model.Images[0].Path)), "?top=0", "top must be a whole number from 1; got '0'."),
            ("top=abc", Image(await File.ReadAllBytesAsync(_model.Images[0].Path)), "?top=abc", "top must be a whole number from 1; got 'abc'."),
            ("top=1e3", Image(await File.ReadAllBytesAsync(_model.Images[0].Path)), "?top=1e3", "top must be a whole number from 1; got '1e3'."),
            ("top above int", Image(await File.ReadAllBytesAsync(_model.Images[0].Path)), "?top=2147483648", "top must be a whole number from 1; got '2147483648'."),
            ("top twice", Image(await File.ReadAllBytesAsync(_model.Images[0].Path)), "?top=1&top=2", "top is given 2 times; give it once (?top=3)."),
        };
        foreach (var (what, content, query, message) in cases)
        {
            using var _ = content;
            var (status, body) = await Post(content, query);
            status.Should().Be(HttpStatusCode.BadRequest, what);
            body.Should().Contain(message, what);
        }
    }

    [Fact]
    public async Task Sixty_four_concurrent_requests_all_succeed_with_the_same_answers()
    {
        var bytes = await Task.WhenAll(_model.Images.Select(i => File.ReadAllBytesAsync(i.Path)));
        var requests = Enumerable.Range(0, 64).Select(async i =>
        {
            using var response = await _client.PostAsync("/classify", Image(bytes[i % bytes.Length]));
            response.StatusCode.Should().Be(HttpStatusCode.OK);
            return (i % bytes.Length, (await response.Content.ReadFromJsonAsync<ClassifyResponse>())!.Predictions[0].Label);
        });
        var answers = await Task.WhenAll(requests);
        answers.Should().OnlyContain(a => a.Label == _model.Images[a.Item1].Top1);
    }

    /// <summary>A noisy 400 x 400 PNG: a real image, bigger than the cap.</summary>
    private static byte[] LargeImage()
    {
        using var bitmap = new SKBitmap(new SKImageInfo(400, 400, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var random = new Random(1);
        random.NextBytes(bitmap.GetPixelSpan());
        using var image = SKImage.FromBitmap(bitmap);
        using var encoded = image.Encode(SKEncodedImageFormat.Png, 100);
        return encoded.ToArray();
    }
}
