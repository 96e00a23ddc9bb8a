namespace DTSKD.Core.Data;

/// <summary>A data set's training and test splits with the preprocessing of its recipe. Disposing it disposes both splits.</summary>
public sealed record DatasetSplits : IDisposable
{
    /// <summary>Creates the record.</summary>
    /// <param name="train">The training split.</param>
    /// <param name="test">The test split.</param>
    /// <param name="preprocessing">Training augmentation and test normalisation for this data set.</param>
    public DatasetSplits(ImageDataset train, ImageDataset test, BatchAugmentation preprocessing)
    {
        Train = train;
        Test = test;
        Preprocessing = preprocessing;
    }

    /// <summary>The training split.</summary>
    public ImageDataset Train { get; }

    /// <summary>The test split.</summary>
    public ImageDataset Test { get; }

    /// <summary>Training augmentation and test normalisation for this data set.</summary>
    public BatchAugmentation Preprocessing { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        Train.Dispose();
        Test.Dispose();
    }
}
