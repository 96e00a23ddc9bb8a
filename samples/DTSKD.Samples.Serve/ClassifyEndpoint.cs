using DTSKD.Core.Deployment;
using DTSKD.Samples.Inference;

namespace DTSKD.Samples.Serve;

/// <summary>
/// <c>POST /classify</c>: one image in the body (raw, with an image content type, or as the <c>image</c> field of a
/// multipart form), the top classes and their probabilities out. Whatever is wrong with the request is a 400 with a
/// message; only a fault of the server is a 500.
/// </summary>
public static class ClassifyEndpoint
{
    private static readonly string[] ImageTypes = ["image/png", "image/jpeg", "image/webp", "image/bmp", "image/gif", "application/octet-stream"];

    /// <summary>Handles one request.</summary>
    public static async Task<IResult> Handle(HttpRequest request, OnnxClassifier classifier, ServeOptions options, DecodeBudget budget, HttpResponse response, CancellationToken cancellationToken)
    {
        // Read here, not bound: a value the binder cannot parse would be a 400 without a body.
        var (k, topError) = Top(request.Query["top"], options.Top);
        if (topError is not null)
        {
            return Bad(topError);
        }

        if (request.ContentLength > options.MaxImageBytes)
        {
            return Bad($"The image is {request.ContentLength} bytes; the limit is {options.MaxImageBytes}.");
        }

        var (stream, name, error) = await Body(request, options, cancellationToken).ConfigureAwait(false);
        if (error is not null)
        {
            return Bad(error);
        }

        byte[] bytes;
        await using (stream!)
        {
            // Read at most one byte past the limit: a body without a Content-Length is capped as well.
            using var buffer = new MemoryStream();
            var chunk = new byte[81920];
            int read;
            try
            {
                while ((read = await stream!.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
                {
                    buffer.Write(chunk, 0, read);
                    if (buffer.Length > options.MaxImageBytes)
                    {
                        return Bad($"The image is larger than the {options.MaxImageBytes}-byte limit.");
                    }
                }
            }
            catch (BadHttpRequestException ex)
            {
                // The client's fault (a malformed chunk, a body too slow or above the server's cap): its status, with a body.
                return Results.Json(new ErrorResponse($"The request body cannot be read: {ex.Message}"), statusCode: ex.StatusCode);
            }
            catch (IOException ex)
            {
                // Kestrel's chunk parser reports a chunk size past 2^31 this way (an overflow inside): the client's bytes too.
                return Bad($"The request body cannot be read: {ex.Message}");
            }

            bytes = buffer.ToArray();
        }

        if (bytes.Length == 0)
        {
            return Bad("The request has no image: send the image's bytes as the body (Content-Type image/png, image/jpeg, ...) or as the 'image' field of a multipart form.");
        }

        try
        {
            // Weighed by its header before anything is decoded: what it will allocate comes out of the server-wide budget.
            var cost = classifier.DecodedBytes(bytes, name!);
            if (cost > budget.Bytes)
            {
                return Results.Json(new ErrorResponse($"The image would take {cost:N0} bytes to decode, more than one decode may take ({budget.Bytes:N0} bytes, seven eighths of Model:DecodeBudgetBytes)."),
                    statusCode: StatusCodes.Status413PayloadTooLarge);
            }

            using var lease = await budget.Acquire(cost, cancellationToken).ConfigureAwait(false);
            if (lease is null)
            {
                response.Headers.RetryAfter = "1";
                return Results.Json(new ErrorResponse("The server is decoding as many images as its budget allows and its queue is full; retry after a second."),
                    statusCode: StatusCodes.Status503ServiceUnavailable);
            }

            var ranked = classifier.Classify([(bytes, name!)], k)[0];
            return Results.Ok(new ClassifyResponse(classifier.Model, ranked));
        }
        catch (ImageDecodeException ex)
        {
            return Bad(ex.Message);
        }
    }

    private static async Task<(Stream? Stream, string? Name, string? Error)> Body(HttpRequest request, ServeOptions options, CancellationToken cancellationToken)
    {
        var type = request.ContentType?.Split(';', 2)[0].Trim().ToLowerInvariant();
        if (type is null)
        {
            return (null, null, "The request has no Content-Type: send an image (image/png, image/jpeg, ...) or a multipart form with an 'image' field.");
        }

        if (type == "multipart/form-data")
        {
            IFormCollection form;
            try
            {
                form = await request.ReadFormAsync(new Microsoft.AspNetCore.Http.Features.FormOptions { MultipartBodyLengthLimit = options.MaxRequestBodyBytes }, cancellationToken)
                    .ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is InvalidDataException or IOException or BadHttpRequestException)
            {
                return (null, null, $"The multipart form cannot be read: {ex.Message}");
            }

            var file = form.Files.GetFile("image");
            return file is null
                ? (null, null, "The form has no 'image' file field.")
                : file.Length > options.MaxImageBytes
                    ? (null, null, $"The image is {file.Length} bytes; the limit is {options.MaxImageBytes}.")
                    : (file.OpenReadStream(), file.FileName, null);
        }

        return ImageTypes.Contains(type)
            ? (request.Body, "the request body", null)
            : (null, null, $"Content-Type '{type}' is not an image: send image/png, image/jpeg, image/webp, image/bmp, image/gif, application/octet-stream, or multipart/form-data.");
    }

    /// <summary>The number of classes asked for: <c>?top=k</c> once, a whole number from 1; else the setting.</summary>
    private static (int Top, string? Error) Top(Microsoft.Extensions.Primitives.StringValues values, int fallback)
    {
        if (values.Count == 0)
        {
            return (fallback, null);
        }

        if (values.Count > 1)
        {
            return (0, $"top is given {values.Count} times; give it once (?top=3).");
        }

        return int.TryParse(values[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var k) && k >= 1
            ? (k, null)
            : (0, $"top must be a whole number from 1; got '{values[0]}'.");
    }

    private static IResult Bad(string message) => Results.BadRequest(new ErrorResponse(message));
}

/// <summary>What <c>/classify</c> answers.</summary>
/// <param name="Model">The network's name.</param>
/// <param name="Predictions">The top classes, most probable first.</param>
public sealed record ClassifyResponse(string Model, IReadOnlyList<Prediction> Predictions);

/// <summary>What a rejected request gets.</summary>
/// <param name="Error">What is wrong with it, in one sentence.</param>
public sealed record ErrorResponse(string Error);
