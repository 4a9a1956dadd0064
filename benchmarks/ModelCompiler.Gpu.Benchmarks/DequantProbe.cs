// Probe of FP8 weight dequantisation for [7168 × 18432] e4m3 → FP32 (run with --dequant-probe on a GPU): the generated
// kernel gives each thread 4 quads of codes 256 apart (4-byte loads, 16-byte stores), its groups in memory order. Would
// more quads per thread, stores that stream past the caches (.cs) or loads through the read-only path (.nc) move more
// bytes per second? Each variant
// is timed on the same input and checked against the generated kernel's output.
using ILGPU;
using ILGPU.Runtime;
using Samples.DeepSeekV3;

namespace ModelCompiler.Gpu.Benchmarks;

internal static class DequantProbe
{
    public static void Run(GpuDevice device, Bench bench)
    {
        int rows = 7168, columns = 18432;
        using var codes = device.Accelerator.Allocate1D(Bench.RandomE4M3Codes((long)rows * columns));
        using var scales = bench.Random((long)(rows / 128) * (columns / 128), 0.005f, 0.006f);
        using var weight = device.Accelerator.Allocate1D<float>((long)rows * columns);
        var v3 = new DeepSeekV3.Kernels.Launcher(device);

        var stream = device.Accelerator.DefaultStream;
        var method = new Action<ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int>(DeepSeekV3.Kernels.DequantizeWeight).Method;
        var eight = new Action<ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int>(EightQuads).Method;
        Action Rewritten(System.Reflection.MethodInfo kernel, int codesPerGroup, Func<string, string> rewrite)
        {
            var launch = device.LoadRewritten(kernel, rewrite).CreateLauncherDelegate<Action<AcceleratorStream, KernelConfig, ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int>>();
            return () => launch(stream, new KernelConfig(rows * ((columns + codesPerGroup - 1) / codesPerGroup), 256), codes.View, scales.View, weight.View, rows, columns);
        }

        static string StreamStores(string ptx) => ProbeTable.HintStores(ptx, ".cs");
        static string ReadOnlyLoads(string ptx) => ptx.Replace("ld.global.u32", "ld.global.nc.u32", StringComparison.Ordinal).Replace("ld.global.b32", "ld.global.nc.b32", StringComparison.Ordinal);

        ProbeTable.Print(bench, 5.0 * rows * columns, weight, ("generated (4 quads per thread, groups in memory order)", () => v3.DequantizeWeight(codes.View, scales.View, weight.View, rows, columns)), new (string, Action)[]
        {
            ("generated, PTX reloaded", Rewritten(method, 4096, ptx => ptx)),
            ("generated, stores .cs", Rewritten(method, 4096, StreamStores)),
            ("generated, loads .nc", Rewritten(method, 4096, ReadOnlyLoads)),
            ("8 quads per thread", Rewritten(eight, 8192, ptx => ptx)),
            ("8 quads per thread, stores .cs", Rewritten(eight, 8192, StreamStores)),
            ("generated again", () => v3.DequantizeWeight(codes.View, scales.View, weight.View, rows, columns)),
        });
    }

    /// <summary>The generated kernel with 8 quads per thread, 256 apart: a group covers 8192 codes of its row; groups in memory order.</summary>
    private static void EightQuads(ArrayView<byte> codes, ArrayView<float> scales, ArrayView<float> weight, int rows, int columns)
    {
        int chunks = (columns + 8191) / 8192;
        int row = Grid.IdxX / chunks, quads = columns / 4;
        int first = (Grid.IdxX - (row * chunks)) * 2048 + Group.IdxX;
        long rowBase = (long)row * quads;
        long scaleRow = (long)(row / 128) * ((columns + 127) / 128);
        var words = codes.Cast<uint>();
        var output = weight.Cast<ILGPU.Util.Float4>();
        uint w0 = first < quads ? words[rowBase + first] : 0u, w1 = first + 256 < quads ? words[rowBase + first + 256] : 0u;
        uint w2 = first + 512 < quads ? words[rowBase + first + 512] : 0u, w3 = first + 768 < quads ? words[rowBase + first + 768] : 0u;
        uint w4 = first + 1024 < quads ? words[rowBase + first + 1024] : 0u, w5 = first + 1280 < quads ? words[rowBase + first + 1280] : 0u;
        uint w6 = first + 1536 < quads ? words[rowBase + first + 1536] : 0u, w7 = first + 1792 < quads ? words[rowBase + first + 1792] : 0u;
        Store(output, scales, rowBase, scaleRow, first, quads, w0);
        Store(output, scales, rowBase, scaleRow, first + 256, quads, w1);
        Store(output, scales, rowBase, scaleRow, first + 512, quads, w2);
        Store(output, scales, rowBase, scaleRow, first + 768, quads, w3);
        Store(output, scales, rowBase, scaleRow, first + 1024, quads, w4);
        Store(output, scales, rowBase, scaleRow, first + 1280, quads, w5);
        Store(output, scales, rowBase, scaleRow, first + 1536, quads, w6);
        Store(output, scales, rowBase, scaleRow, first + 1792, quads, w7);
    }

    private static void Store(ArrayView<ILGPU.Util.Float4> output, ArrayView<float> scales, long rowBase, long scaleRow, int quad, int quads, uint word)
    {
        if (quad >= quads) return;
        float scale = scales[scaleRow + (quad * 4 / 128)];
        output[rowBase + quad] = new ILGPU.Util.Float4(E4M3.DecodeByte(word, 0) * scale, E4M3.DecodeByte(word, 1) * scale, E4M3.DecodeByte(word, 2) * scale, E4M3.DecodeByte(word, 3) * scale);
    }
}
