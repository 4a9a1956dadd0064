using ILGPU;
using ILGPU.Runtime;

namespace ModelCompiler.Gpu.Benchmarks;

/// <summary>What the kernel probes (--rows-probe, --dequant-probe) share: their table and their PTX store rewrite.</summary>
internal static class ProbeTable
{
    /// <summary>
    /// Times the generated kernel, then every variant twice (so that a difference can be told from the drift between passes),
    /// each writing <paramref name="output"/>, and prints ms, the rate of <paramref name="bytes"/> moved per launch and the
    /// largest difference to the generated kernel's output on sampled elements. A variant whose launch throws
    /// <see cref="InvalidOperationException"/> (rewritten PTX that did not load) prints why instead of a time.
    /// </summary>
    public static void Print(Bench bench, double bytes, MemoryBuffer1D<float, Stride1D.Dense> output, (string Label, Action Launch) generated, IReadOnlyList<(string Label, Action Launch)> variants)
    {
        double generatedMs = bench.Time(generated.Launch);
        var expected = output.GetAsArray1D();
        Console.WriteLine("| variant | ms | TB/s | max abs diff to generated |");
        Console.WriteLine("| --- | ---: | ---: | ---: |");
        Console.WriteLine($"| {generated.Label} | {generatedMs:F4} | {bytes / generatedMs / 1e9:F2} | 0 |");
        foreach (var (label, launch) in variants.Concat(variants))
        {
            output.MemSetToZero();
            double ms;
            try
            {
                ms = bench.Time(launch);
            }
            catch (InvalidOperationException e)
            {
                Console.WriteLine($"| {label} | {e.Message.ReplaceLineEndings(" ")} | | |");
                continue;
            }

            var actual = output.GetAsArray1D();
            double diff = 0;
            for (long i = 0; i < actual.LongLength; i += 997) diff = Math.Max(diff, Math.Abs(actual[i] - expected[i]));
            Console.WriteLine($"| {label} | {ms:F4} | {bytes / ms / 1e9:F2} | {diff:E1} |");
        }
    }

    private const string VectorStore = "st.global.v4.f32";

    /// <summary>The kernel's 16-byte FP32 stores with a cache operator (".cs", ".L1::no_allocate"); throws when it has none.</summary>
    public static string HintStores(string ptx, string hint)
    {
        if (!ptx.Contains(VectorStore, StringComparison.Ordinal)) throw new InvalidOperationException("No vector stores found.");
        return ptx.Replace(VectorStore, "st.global" + hint + ".v4.f32", StringComparison.Ordinal);
    }
}
