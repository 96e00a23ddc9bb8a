using DTSKD.Core.Data;

namespace DTSKD.Core.Tests;

public class AugmentationAndSamplerTests
{
    [Fact]
    public void Sampler_covers_every_index_once_per_epoch_and_reshuffles_deterministically()
    {
        var sampler = new BatchSampler(count: 103, batchSize: 10, seed: 9);
        sampler.StepsPerEpoch.Should().Be(11);
        long[] Epoch(BatchSampler s, int e) => s.Batches(e).SelectMany(b => { var a = b.data<long>().ToArray(); b.Dispose(); return a; }).ToArray();

        var e0 = Epoch(sampler, 0);
        var e1 = Epoch(sampler, 1);
        e0.Order().Should().Equal(Enumerable.Range(0, 103).Select(i => (long)i));
        e1.Order().Should().Equal(Enumerable.Range(0, 103).Select(i => (long)i));
        e0.Should().NotEqual(e1);
        Epoch(new BatchSampler(103, 10, seed: 9), 1).Should().Equal(e1);
        Epoch(new BatchSampler(103, 10, seed: 10), 1).Should().NotEqual(e1);
        sampler.Batches(1, firstStep: 4).SelectMany(b => b.data<long>().ToArray()).Should().Equal(e1.Skip(40));

        var dropLast = new BatchSampler(103, 10, 9, dropLast: true);
        dropLast.StepsPerEpoch.Should().Be(10);
        dropLast.Batches(0).Should().OnlyContain(b => b.shape[0] == 10);
    }

    [Fact]
    public void Crops_stay_within_the_padding_and_flips_happen_about_half_the_time()
    {
        // Pixel value = 1 + column + 8 * row, so every output pixel says where it came from (0 = padding).
        const int n = 2000, size = 8, pad = 2;
        using var one = arange(1, 1 + (size * size), dtype: ScalarType.Int32).view(1, 1, size, size).to(ScalarType.Byte);
        using var images = one.expand(n, 1, size, size).contiguous();
        var identity = new PadCropFlip([0.0], [1.0 / 255], padding: pad);

        using var output = identity.Augment(images, seed: 1, epoch: 0, stepInEpoch: 0);
        var values = output.to(ScalarType.Int32).data<int>().ToArray();

        var flips = 0;
        for (var s = 0; s < n; s++)
        {
            var sample = values.AsSpan(s * size * size, size * size).ToArray();
            var (dy, dx, flipped) = Locate(sample, size, pad);
            dy.Should().BeInRange(-pad, pad);
            dx.Should().BeInRange(-pad, pad);
            flips += flipped ? 1 : 0;
        }

        ((double)flips / n).Should().BeApproximately(0.5, 0.05);
    }

    [Fact]
    public void Normalisation_is_exact_and_draws_depend_only_on_seed_epoch_and_step()
    {
        using var images = randint(0, 256, [4, 3, 6, 6], dtype: ScalarType.Byte);
        var cifar = PadCropFlip.Cifar;
        using var normalized = cifar.Prepare(images);
        double[] mean = [0.4914, 0.4822, 0.4465], std = [0.2023, 0.1994, 0.2010];
        for (var c = 0; c < 3; c++)
        {
            var raw = images[2, c, 3, 1].item<byte>();
            normalized[2, c, 3, 1].item<float>().Should().BeApproximately((float)(((raw / 255.0) - mean[c]) / std[c]), 1e-5f);
        }

        using var a = cifar.Augment(images, 5, 2, 7);
        using var b = cifar.Augment(images, 5, 2, 7);
        using var c2 = cifar.Augment(images, 5, 2, 8);
        a.allclose(b, rtol: 0, atol: 0).Should().BeTrue();
        a.allclose(c2, rtol: 0, atol: 0).Should().BeFalse();

        // Padding is zero in pixel space: after normalisation it is -mean/std.
        using var black = zeros([64, 3, 6, 6], ScalarType.Byte);
        using var padded = cifar.Augment(black, 1, 0, 0);
        padded.min().item<float>().Should().BeApproximately((float)(-mean[0] / std[0]), 1e-5f);
    }

    [Fact]
    public void Bad_images_are_rejected()
    {
        using var floats = zeros(2, 3, 8, 8);
        using var gray = zeros([2, 1, 8, 8], ScalarType.Byte);
        ((Action)(() => PadCropFlip.Cifar.Augment(floats, 1, 0, 0))).Should().Throw<ArgumentException>().WithMessage("*uint8 [batch, 3, height, width]*Float32*");
        ((Action)(() => PadCropFlip.Cifar.Prepare(gray))).Should().Throw<ArgumentException>().Where(e => e.ParamName == "images");
        ((Action)(() => new PadCropFlip([0.5], [0.0]))).Should().Throw<ArgumentException>();
    }

    // Finds the shift (and flip) that maps the original 8x8 grid onto the sample; padding pixels are 0.
    private static (int Dy, int Dx, bool Flipped) Locate(int[] sample, int size, int pad)
    {
        for (var dy = -pad; dy <= pad; dy++)
        {
            for (var dx = -pad; dx <= pad; dx++)
            {
                foreach (var flipped in new[] { false, true })
                {
                    var match = true;
                    for (var r = 0; r < size && match; r++)
                    {
                        for (var c = 0; c < size && match; c++)
                        {
                            var col = flipped ? size - 1 - c : c;
                            var (sr, sc) = (r + dy, col + dx);
                            var expected = sr < 0 || sr >= size || sc < 0 || sc >= size ? 0 : 1 + sc + (size * sr);
                            match = sample[(r * size) + c] == expected;
                        }
                    }

                    if (match && (flipped || !Symmetric(sample, size)))
                    {
                        return (dy, dx, flipped);
                    }
                }
            }
        }

        throw new InvalidOperationException("The sample is not a shifted (and possibly flipped) crop of the image.");
    }

    private static bool Symmetric(int[] sample, int size) =>
        Enumerable.Range(0, size).All(r => Enumerable.Range(0, size).All(c => sample[(r * size) + c] == sample[(r * size) + size - 1 - c]));
}
