using Xunit;

// One test class at a time: TorchSharp's intra-op thread count is process-wide, and decoding changes it for small steps
// (SmallStep), which must not happen while another test's operations run on the shared thread pool.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
