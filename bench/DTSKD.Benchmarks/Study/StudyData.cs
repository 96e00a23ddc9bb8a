using DTSKD.Core.Data;
#if !NO_PLOTS
using DTSKD.Core.Images;
#endif

namespace DTSKD.Benchmarks.Study;

/// <summary>A study's data: a standard data set or an image folder, limited and with label noise as its settings say.</summary>
public static class StudyData
{
    public static DatasetSplits Open(StudySettings s, string? imageCache)
    {
        DatasetSplits data;
        if (s.DataType == "folder")
        {
#if NO_PLOTS
            throw new NotSupportedException("--data-type folder needs DTSKD.Core.Images, which this build leaves out.");
#else
            data = ImageFolder.Open(s.DataPath!, new ImageFolderOptions { ImageSize = s.ImageSize ?? 32, Channels = s.Channels, CacheDirectory = imageCache });
            if (s.TrainLimit is not null || s.TestLimit is not null)
            {
                var limited = new DatasetSplits(Limit(data.Train, s.TrainLimit), Limit(data.Test, s.TestLimit), data.Preprocessing);
                data = limited;
            }
#endif
        }
        else
        {
            data = StandardDatasets.LoadAsync(s.DataType, s.DataPath, s.TrainLimit, s.TestLimit).GetAwaiter().GetResult();
        }

        return s.LabelNoise > 0 ? new DatasetSplits(new NoisyLabels(data.Train, s.LabelNoise, s.LabelNoiseSeed), data.Test, data.Preprocessing) : data;
    }

    private static IImageSource Limit(IImageSource source, int? count) => count is { } n && n < source.Count ? ImageSources.First(source, n) : source;
}
