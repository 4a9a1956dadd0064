// Probe of RMSNorm variants for rows of 7168 FP32 (run with --rows-probe on a GPU): the generated kernel reads a row in
// 512 threads × 4 float4 loads (the last half idle) twice, with torch.compile's cache hints written into its PTX
// (CacheHints.ReadTwice). How much do the hints give, and would other shapes, the row held in registers (read once) or
// other hints move more bytes per second? Each variant is timed on the same [32768 × 7168] input and checked against the
// generated kernel's output.
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ILGPU.Util;
using Samples.DeepSeekV3;

namespace ModelCompiler.Gpu.Benchmarks;

internal static class RowsProbe
{
    private const int Vectors = 1792; // float4s per row of 7168

    public static void Run(GpuDevice device, Bench bench)
    {
        int n = 32768, width = DeepSeekV3.Kernels.Hidden;
        using var x = bench.Random((long)n * width, 3f);
        using var weight = bench.Random(width, 0.5f, 1f);
        using var y = device.Accelerator.Allocate1D<float>((long)n * width);
        var v3 = new DeepSeekV3.Kernels.Launcher(device);

        var shape448 = device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(new Action<ArrayView<float>, ArrayView<float>, ArrayView<float>>(Rms448By4));
        var twoPass256 = new Action<ArrayView<float>, ArrayView<float>, ArrayView<float>>(RmsTwoPass256By7).Method;
        var twoPass = new Action<ArrayView<float>, ArrayView<float>, ArrayView<float>>(RmsTwoPass).Method;
        var stream = device.Accelerator.DefaultStream;
        var generated = new Action<ArrayView<float>, ArrayView<float>, ArrayView<float>>(DeepSeekV3.Kernels.Cuda.RmsNormHidden).Method;
        Action RewrittenKernel(System.Reflection.MethodInfo kernel, int threads, Func<string, string> rewrite)
        {
            try
            {
                var launch = device.LoadRewritten(kernel, ptx =>
                {
                    string rewritten = rewrite(ptx);
                    int loads = System.Text.RegularExpressions.Regex.Count(rewritten, @"ld\.global[.\w:]*\.v4"), stores = System.Text.RegularExpressions.Regex.Count(rewritten, @"st\.global[.\w:]*\.v4");
                    Console.WriteLine($"<!-- {kernel.Name}: {loads} vector loads, {stores} vector stores in the loaded PTX -->");
                    return rewritten;
                }).CreateLauncherDelegate<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>>>();
                return () => launch(stream, new KernelConfig(n, threads), x.View, weight.View, y.View);
            }
            catch (Exception e)
            {
                return () => throw new InvalidOperationException("the rewritten PTX did not load: " + e.Message, e);
            }
        }

        ProbeTable.Print(bench, 2.0 * n * width * 4, y, ("generated (512 × 4, read twice, hinted)", () => v3.RmsNormHidden(x.View, weight.View, y.View)), new (string, Action)[]
        {
            ("448 × 4, read once (the row in registers)", () => shape448(stream, new KernelConfig(n, 448), x.View, weight.View, y.View)),
            ("448 × 4 two passes (x read again from L2)", RewrittenKernel(twoPass, 448, ptx => ptx)),
            ("448 × 4 two passes, evict_last then evict_first, y stores .cs", RewrittenKernel(twoPass, 448, ptx => ProbeTable.HintStores(PolicyLoads(ptx, "evict_last", "evict_first"), ".cs"))),
            ("448 × 4 two passes, L2 policies only, y stores .cs", RewrittenKernel(twoPass, 448, ptx => ProbeTable.HintStores(PolicyLoads(ptx, "evict_last", "evict_first", l1: false), ".cs"))),
            ("448 × 4 two passes, evict_last then evict_first, y stores .L1::no_allocate", RewrittenKernel(twoPass, 448, ptx => ProbeTable.HintStores(PolicyLoads(ptx, "evict_last", "evict_first"), ".L1::no_allocate"))),
            ("448 × 4 two passes, evict_last then evict_first, y stores L2 evict_first", RewrittenKernel(twoPass, 448, ptx => PolicyStores(PolicyLoads(ptx, "evict_last", "evict_first")))),
            ("448 × 4 two passes, pass 2 evict_first only, y stores .cs", RewrittenKernel(twoPass, 448, ptx => ProbeTable.HintStores(PolicyLoads(ptx, null, "evict_first"), ".cs"))),
            ("256 × 7 two passes, evict_last then evict_first, y stores .cs", RewrittenKernel(twoPass256, 256, ptx => ProbeTable.HintStores(PolicyLoads(ptx, "evict_last", "evict_first"), ".cs"))),
            ("generated, without its cache hints (ILGPU's PTX as it is)", RewrittenKernel(generated, 512, ptx => ptx)),
            ("generated again", () => v3.RmsNormHidden(x.View, weight.View, y.View)),
        });
    }

    /// <summary>
    /// Triton's <c>eviction_policy</c>: L2 policies made once and passed to the vector loads before the block's barrier
    /// (<paramref name="beforeBarrier"/>) and after it (<paramref name="afterBarrier"/>); null leaves those loads alone.
    /// </summary>
    private static string PolicyLoads(string ptx, string? beforeBarrier, string? afterBarrier, bool l1 = true)
    {
        const string Load = @"ld\.global\.v4\.f32(\s+\{[^}]*\}, \[[^\]]*\]);";
        int barrier = ptx.IndexOf("bar.sync", StringComparison.Ordinal);
        string before = ptx[..barrier], after = ptx[barrier..];
        if (beforeBarrier is not null) before = System.Text.RegularExpressions.Regex.Replace(before, Load, (l1 ? $"ld.global.L1::{beforeBarrier}" : "ld.global") + ".L2::cache_hint.v4.f32$1, %rdbefore;");
        if (afterBarrier is not null) after = System.Text.RegularExpressions.Regex.Replace(after, Load, (l1 ? $"ld.global.L1::{afterBarrier}" : "ld.global") + ".L2::cache_hint.v4.f32$1, %rdafter;");
        int firstLoad = before.IndexOf("ld.param", StringComparison.Ordinal);
        string policies = ".reg .b64 %rdbefore, %rdafter;\n\t"
            + $"createpolicy.fractional.L2::{beforeBarrier ?? "evict_normal"}.b64 %rdbefore, 1.0;\n\t"
            + $"createpolicy.fractional.L2::{afterBarrier ?? "evict_normal"}.b64 %rdafter, 1.0;\n\t";
        return before[..firstLoad] + policies + before[firstLoad..] + after;
    }

    /// <summary>Stores with the after-barrier L2 policy of <see cref="PolicyLoads"/> (apply that first).</summary>
    private static string PolicyStores(string ptx) =>
        System.Text.RegularExpressions.Regex.Replace(ptx, @"st\.global\.v4\.f32(\s+\[[^\]]*\], \{[^}]*\});", "st.global.L2::cache_hint.v4.f32$1, %rdafter;");

    /// <summary>Torch.compile's RMSNorm: x read once for the sums, then again (from L2) for the output; nothing held across the barrier.</summary>
    private static void RmsTwoPass(ArrayView<float> x, ArrayView<float> weight, ArrayView<float> y)
    {
        int thread = Group.IdxX;
        var xs = x.Cast<Float4>();
        var ws = weight.Cast<Float4>();
        var ys = y.Cast<Float4>();
        long row = (long)Grid.IdxX * Vectors;
        float inverse = RowSum(Squares(xs[row + thread]) + Squares(xs[row + thread + 448]) + Squares(xs[row + thread + 896]) + Squares(xs[row + thread + 1344]), 14);
        ys[row + thread] = Scale(xs[row + thread], inverse, ws[thread]);
        ys[row + thread + 448] = Scale(xs[row + thread + 448], inverse, ws[thread + 448]);
        ys[row + thread + 896] = Scale(xs[row + thread + 896], inverse, ws[thread + 896]);
        ys[row + thread + 1344] = Scale(xs[row + thread + 1344], inverse, ws[thread + 1344]);
    }

    private static void RmsTwoPass256By7(ArrayView<float> x, ArrayView<float> weight, ArrayView<float> y)
    {
        int thread = Group.IdxX;
        var xs = x.Cast<Float4>();
        var ws = weight.Cast<Float4>();
        var ys = y.Cast<Float4>();
        long row = (long)Grid.IdxX * Vectors + thread;
        float inverse = RowSum(Squares(xs[row]) + Squares(xs[row + 256]) + Squares(xs[row + 512]) + Squares(xs[row + 768]) + Squares(xs[row + 1024]) + Squares(xs[row + 1280]) + Squares(xs[row + 1536]), 8);
        for (int slot = 0; slot < 7; slot++) ys[row + (256 * slot)] = Scale(xs[row + (256 * slot)], inverse, ws[thread + (256 * slot)]);
    }

    private static float Squares(Float4 v) => (v.X * v.X) + (v.Y * v.Y) + (v.Z * v.Z) + (v.W * v.W);

    private static Float4 Scale(Float4 v, float inverse, Float4 g) => new(v.X * inverse * g.X, v.Y * inverse * g.Y, v.Z * inverse * g.Z, v.W * inverse * g.W);

    private static float RowSum(float sum, int warps)
    {
        for (int offset = 16; offset >= 1; offset /= 2) sum += Warp.ShuffleXor(sum, offset);
        var warpSums = SharedMemory.Allocate<float>(16);
        if (Warp.LaneIdx == 0) warpSums[Warp.WarpIdx] = sum;
        Group.Barrier();
        sum = 0f;
        for (int i = 0; i < warps; i++) sum += warpSums[i];
        return 1f / MathF.Sqrt((sum * (1f / 7168f)) + DeepSeekV3.Kernels.RmsNormEpsilon);
    }

    private static void Rms448By4(ArrayView<float> x, ArrayView<float> weight, ArrayView<float> y)
    {
        int thread = Group.IdxX;
        var xs = x.Cast<Float4>();
        var ws = weight.Cast<Float4>();
        var ys = y.Cast<Float4>();
        long row = (long)Grid.IdxX * Vectors;
        Float4 v0 = xs[row + thread], v1 = xs[row + thread + 448], v2 = xs[row + thread + 896], v3 = xs[row + thread + 1344];
        float inverse = RowSum(Squares(v0) + Squares(v1) + Squares(v2) + Squares(v3), 14);
        ys[row + thread] = Scale(v0, inverse, ws[thread]);
        ys[row + thread + 448] = Scale(v1, inverse, ws[thread + 448]);
        ys[row + thread + 896] = Scale(v2, inverse, ws[thread + 896]);
        ys[row + thread + 1344] = Scale(v3, inverse, ws[thread + 1344]);
    }

}
