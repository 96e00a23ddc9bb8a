// The studies run as processes one after another: two LibTorch processes at once on a small CI machine slow both
// many times over.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
