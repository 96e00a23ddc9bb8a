using DTSKD.Core.Data;
using Spectre.Console;

namespace DTSKD.Samples.Cifar100;

/// <summary>Loads the data set the configuration names (<see cref="StandardDatasets"/>), showing CIFAR-100's download.</summary>
public static class SampleData
{
    /// <exception cref="FileNotFoundException">The data is missing and cannot be downloaded; the message says what to do.</exception>
    /// <exception cref="InvalidDataException">A file is damaged or of another format; the message names it.</exception>
    /// <exception cref="HttpRequestException">The download failed.</exception>
    public static async Task<DatasetSplits> LoadAsync(ExperimentConfig config, IAnsiConsole console, CancellationToken cancellationToken, Uri? cifar100Source = null)
    {
        var path = config.ResolvedDataPath;
        var downloading = config.DataType == StandardDatasets.Cifar100 && config.Download && !StandardDatasets.IsPresent(config.DataType, path);
        if (!downloading)
        {
            return await StandardDatasets.LoadAsync(config.DataType, path, config.TrainLimit, config.TestLimit, download: false, cancellationToken: cancellationToken).ConfigureAwait(false);
        }

        var from = cifar100Source ?? StandardDatasets.Cifar100Source;
        console.MarkupLineInterpolated($"CIFAR-100 is not in '{path}': downloading {from} (169 MB, checked against its published size and MD5).");
        try
        {
            if (!console.Profile.Capabilities.Interactive)
            {
                return await StandardDatasets.LoadAsync(config.DataType, path, config.TrainLimit, config.TestLimit, source: from, cancellationToken: cancellationToken).ConfigureAwait(false);
            }

            return await console.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
                .StartAsync(async ctx =>
                {
                    var task = ctx.AddTask("cifar-100-binary.tar.gz");
                    var progress = new Progress<(long Bytes, long Total)>(p =>
                    {
                        task.MaxValue = p.Total;
                        task.Value = p.Bytes;
                    });
                    return await StandardDatasets.LoadAsync(config.DataType, path, config.TrainLimit, config.TestLimit, progress: progress, source: from, cancellationToken: cancellationToken).ConfigureAwait(false);
                }).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new HttpRequestException(
                $"CIFAR-100 could not be downloaded from {from} ({ex.Message}). Put cifar-100-binary.tar.gz or its extracted folder into '{path}', or try again.", ex);
        }
    }
}
