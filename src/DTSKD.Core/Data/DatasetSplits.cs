namespace DTSKD.Core.Data;

/// <summary>A data set's training and test splits with the augmentation of its recipe. Disposing it disposes both splits.</summary>
/// <remarks>Sources that know more about themselves derive from it (an image folder's splits say how the folder was read).</remarks>
public record DatasetSplits : IDisposable
{
    /// <summary>Creates the record; it takes ownership of the splits.</summary>
    /// <param name="train">The training split.</param>
    /// <param name="test">The test split.</param>
    /// <param name="preprocessing">Training augmentation and test preparation for this data set.</param>
    public DatasetSplits(IImageSource train, IImageSource test, IBatchAugmentation preprocessing)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(preprocessing);
        Train = train;
        Test = test;
        Preprocessing = preprocessing;
    }

    /// <summary>The training split.</summary>
    public IImageSource Train { get; }

    /// <summary>The test split.</summary>
    public IImageSource Test { get; }

    /// <summary>Training augmentation and test preparation for this data set.</summary>
    public IBatchAugmentation Preprocessing { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Disposes both splits.</summary>
    /// <param name="disposing">True when called from <see cref="Dispose()"/>.</param>
    protected virtual void Dispose(bool disposing)
    {
        if (disposing)
        {
            Train.Dispose();
            Test.Dispose();
        }
    }
}
