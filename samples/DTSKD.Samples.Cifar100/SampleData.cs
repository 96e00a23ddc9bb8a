using DTSKD.Core.Data;
using Spectre.Console;

namespace DTSKD.Samples.Cifar100;

/// <summary>Finds (or, for CIFAR-100, downloads) the data set the configuration names.</summary>
public static class SampleData
{
    /// <summary>Raised when the data is missing and cannot be fetched: the message is one line for the user.</summary>
    public sealed class MissingDataException(string message) : Exception(message);

    public static async Task<(ImageDataset Train, ImageDataset Test, BatchAugmentation Preprocessing)> LoadAsync(
        ExperimentConfig config, IAnsiConsole console, CancellationToken cancellationToken, Uri? cifar100Source = null)
    {
        var path = config.ResolvedDataPath;
        ImageDataset train, test;
        BatchAugmentation preprocessing;
        switch (config.DataType)
        {
            case "cifar100":
                if (!Cifar100Download.IsPresent(path) && !config.Download)
                {
                    throw new MissingDataException($"CIFAR-100 is not in '{Path.Combine(path, Cifar100Download.FolderName)}' (train.bin, test.bin), and --no-download was given.");
                }

                var folder = await FetchCifar100Async(path, console, cifar100Source, cancellationToken).ConfigureAwait(false);
                (train, test) = (CifarReader.LoadCifar100(folder, train: true), CifarReader.LoadCifar100(folder, train: false));
                preprocessing = BatchAugmentation.Cifar;
                break;
            case "cifar10":
                var cifar10 = Path.Combine(path, "cifar-10-batches-bin");
                if (!File.Exists(Path.Combine(cifar10, "test_batch.bin")))
                {
                    throw new MissingDataException($"CIFAR-10 is not in '{cifar10}': extract cifar-10-binary.tar.gz into '{path}' first.");
                }

                (train, test) = (CifarReader.LoadCifar10(cifar10, train: true), CifarReader.LoadCifar10(cifar10, train: false));
                preprocessing = BatchAugmentation.Cifar;
                break;
            default:
                if (!Directory.Exists(path))
                {
                    throw new MissingDataException($"Fashion-MNIST is not in '{path}': on Debian or Ubuntu, `sudo apt-get install dataset-fashion-mnist`.");
                }

                (train, test) = (IdxReader.LoadFashionMnist(path, train: true), IdxReader.LoadFashionMnist(path, train: false));
                preprocessing = BatchAugmentation.FashionMnist;
                break;
        }

        return (Limit(train, config.TrainLimit), Limit(test, config.TestLimit), preprocessing);
    }

    private static ImageDataset Limit(ImageDataset data, int? limit)
    {
        if (limit is not { } n || n >= data.Count)
        {
            return data;
        }

        using (data)
        {
            return data.Take(n);
        }
    }

    private static async Task<string> FetchCifar100Async(string path, IAnsiConsole console, Uri? source, CancellationToken ct)
    {
        if (Cifar100Download.IsPresent(path))
        {
            return Path.Combine(path, Cifar100Download.FolderName);
        }

        var from = source ?? Cifar100Download.OfficialSource;
        console.MarkupLineInterpolated($"CIFAR-100 is not in '{path}': downloading {from} ({Cifar100Download.ArchiveSize / 1e6:F0} MB).");
        try
        {
            if (console.Profile.Capabilities.Interactive)
            {
                return await console.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
                    .StartAsync(async ctx =>
                    {
                        var task = ctx.AddTask(Cifar100Download.ArchiveName, maxValue: Cifar100Download.ArchiveSize);
                        var progress = new Progress<(long Bytes, long Total)>(p => task.Value = p.Bytes);
                        return await Cifar100Download.EnsureAsync(path, progress, source, cancellationToken: ct).ConfigureAwait(false);
                    }).ConfigureAwait(false);
            }

            return await Cifar100Download.EnsureAsync(path, null, source, cancellationToken: ct).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new MissingDataException(
                $"CIFAR-100 could not be downloaded from {from} ({ex.Message}). Put {Cifar100Download.ArchiveName} or its extracted folder into '{path}', or try again.");
        }
    }
}
