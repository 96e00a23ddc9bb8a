// TorchSharp's default generator (model initialisation) is process-wide: seeded tests must not interleave.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
