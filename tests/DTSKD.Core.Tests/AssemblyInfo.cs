// TorchSharp's default generator (model initialisation, randn) is process-wide: tests that seed it must not
// interleave with others that draw from it, or "same seed, same run" checks see each other's draws.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
