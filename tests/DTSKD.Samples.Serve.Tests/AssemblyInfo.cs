// The model is trained once per run of the class fixture; TorchSharp's generator is process-wide.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
