using DTSKD.Samples.Serve;
using DTSKD.Samples.Inference;

// An image classifier trained with DTSKD.Core, served from its ONNX export:
//   dotnet run --project samples/DTSKD.Samples.Serve -- --Model:Path=experiments/<run>/backbone.onnx
//   curl -X POST --data-binary @cat.png -H 'Content-Type: image/png' http://localhost:5000/classify
var builder = WebApplication.CreateBuilder(args);

// Everything served is checked once, here: a setting or a model that cannot work is one line and exit 2, not a server
// whose every request fails.
var (read, settingError) = ServeOptions.Read(builder.Configuration.GetSection("Model"));
if (read is not { } options)
{
    Console.Error.WriteLine($"error: {settingError}");
    return 2;
}

if (string.IsNullOrWhiteSpace(options.Path) || !File.Exists(options.Path))
{
    Console.Error.WriteLine($"error: Model:Path '{options.Path}' is not a file: give the .onnx file to serve (--Model:Path=... or Model__Path=...).");
    return 2;
}

OnnxClassifier classifier;
try
{
    classifier = new OnnxClassifier(options.Path);
}
catch (InvalidDataException ex)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    return 2;
}

// Kestrel's body cap follows the image limit (and a form's envelope), so the setting is the limit in force.
builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes);
builder.Services.AddSingleton(new DecodeBudget(options));
builder.Services.AddSingleton(options);
builder.Services.AddSingleton(classifier);
var app = builder.Build();

// A client's error without a body of its own (a path or method nothing serves) gets the same JSON error as the others.
app.UseStatusCodePages(async context =>
{
    var (request, response) = (context.HttpContext.Request, context.HttpContext.Response);
    var what = $"{request.Method} {request.Path}";
    var error = response.StatusCode switch
    {
        StatusCodes.Status404NotFound => $"Nothing is served at '{what}': POST an image to /classify, or GET /health.",
        StatusCodes.Status405MethodNotAllowed => $"'{what}' is not allowed: {request.Path} takes {response.Headers.Allow}.",
        _ => $"'{what}' failed with status {response.StatusCode}.",
    };
    await response.WriteAsJsonAsync(new ErrorResponse(error)).ConfigureAwait(false);
});

app.MapMethods("/health", ["GET", "HEAD"], (OnnxClassifier model) => Results.Ok(new { status = "ok", model = model.Model, classes = model.ClassCount, imageSize = model.ImageSize }));
app.MapPost("/classify", ClassifyEndpoint.Handle).DisableAntiforgery();

app.Run();
return 0;

/// <summary>The entry point, visible to the tests' <c>WebApplicationFactory</c>.</summary>
public partial class Program;
