// Probe of RMSNorm launch shapes for rows of 7168 FP32 (run with --rows-probe on a GPU): the generated kernel holds a
// row in 512 threads × 4 float4 loads, the last half idle; would 256 × 7 or 448 × 4 (no idle slot), loads that skip L1
// and ask L2 for 256-byte sectors, or evict-first stores move more bytes per second? Each variant is timed on the same
// [32768 × 7168] input and checked against the generated kernel's output.
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
        using var reference = device.Accelerator.Allocate1D<float>((long)n * width);
        using var y = device.Accelerator.Allocate1D<float>((long)n * width);
        var v3 = new DeepSeekV3.Kernels.Launcher(device);
        double generated = bench.Time(() => v3.RmsNormHidden(x.View, weight.View, reference.View));
        var expected = reference.GetAsArray1D();
        double bytes = 2.0 * n * width * 4;
        Console.WriteLine($"| variant | ms | TB/s | max abs diff to generated |");
        Console.WriteLine($"| --- | ---: | ---: | ---: |");
        Console.WriteLine($"| generated (512 × 4, last slot half idle) | {generated:F4} | {bytes / generated / 1e9:F2} | 0 |");

        var shape256 = device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(new Action<ArrayView<float>, ArrayView<float>, ArrayView<float>>(Rms256By7));
        var shape448 = device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>>>(new Action<ArrayView<float>, ArrayView<float>, ArrayView<float>>(Rms448By4));
        var persistent = device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>>(new Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(RmsPersistent));
        int processors = device.Accelerator.NumMultiprocessors;
        var hinted = device.Load<Action<AcceleratorStream, KernelConfig, long, long, long, int>>(new Action<long, long, long, int>(Rms256By7Hinted));
        long xAddress = x.View.BaseView.LoadEffectiveAddressAsPtr().ToInt64(), wAddress = weight.View.BaseView.LoadEffectiveAddressAsPtr().ToInt64(), yAddress = y.View.BaseView.LoadEffectiveAddressAsPtr().ToInt64();
        var stream = device.Accelerator.DefaultStream;
        foreach (var (label, launch) in new (string, Action)[]
        {
            ("256 × 7", () => shape256(stream, new KernelConfig(n, 256), x.View, weight.View, y.View)),
            ("448 × 4", () => shape448(stream, new KernelConfig(n, 448), x.View, weight.View, y.View)),
            ("448 × 4 persistent, 2 groups per SM, next row loaded before this row's reduction", () => persistent(stream, new KernelConfig(2 * processors, 448), x.View, weight.View, y.View, n)),
            ("448 × 4 persistent, 3 groups per SM", () => persistent(stream, new KernelConfig(3 * processors, 448), x.View, weight.View, y.View, n)),
            ("256 × 7, raw addresses, no hints", () => hinted(stream, new KernelConfig(n, 256), xAddress, wAddress, yAddress, 0)),
            ("256 × 7, ld.global.nc.L1::no_allocate.L2::256B", () => hinted(stream, new KernelConfig(n, 256), xAddress, wAddress, yAddress, 1)),
            ("256 × 7, st.global.cs", () => hinted(stream, new KernelConfig(n, 256), xAddress, wAddress, yAddress, 2)),
            ("256 × 7, both", () => hinted(stream, new KernelConfig(n, 256), xAddress, wAddress, yAddress, 3)),
            ("generated again", () => v3.RmsNormHidden(x.View, weight.View, y.View)),
        })
        {
            y.MemSetToZero();
            double ms = bench.Time(launch);
            var actual = y.GetAsArray1D();
            double diff = 0;
            for (long i = 0; i < actual.LongLength; i += 997) diff = Math.Max(diff, Math.Abs(actual[i] - expected[i]));
            Console.WriteLine($"| {label} | {ms:F4} | {bytes / ms / 1e9:F2} | {diff:E1} |");
        }
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

    private static void Rms256By7(ArrayView<float> x, ArrayView<float> weight, ArrayView<float> y)
    {
        int thread = Group.IdxX;
        var xs = x.Cast<Float4>();
        var ws = weight.Cast<Float4>();
        var ys = y.Cast<Float4>();
        long row = (long)Grid.IdxX * Vectors;
        Float4 v0 = xs[row + thread], v1 = xs[row + thread + 256], v2 = xs[row + thread + 512], v3 = xs[row + thread + 768];
        Float4 v4 = xs[row + thread + 1024], v5 = xs[row + thread + 1280], v6 = xs[row + thread + 1536];
        float inverse = RowSum(Squares(v0) + Squares(v1) + Squares(v2) + Squares(v3) + Squares(v4) + Squares(v5) + Squares(v6), 8);
        ys[row + thread] = Scale(v0, inverse, ws[thread]);
        ys[row + thread + 256] = Scale(v1, inverse, ws[thread + 256]);
        ys[row + thread + 512] = Scale(v2, inverse, ws[thread + 512]);
        ys[row + thread + 768] = Scale(v3, inverse, ws[thread + 768]);
        ys[row + thread + 1024] = Scale(v4, inverse, ws[thread + 1024]);
        ys[row + thread + 1280] = Scale(v5, inverse, ws[thread + 1280]);
        ys[row + thread + 1536] = Scale(v6, inverse, ws[thread + 1536]);
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

    /// <summary>Groups loop over rows g, g + grid, …; the weight stays in registers and row r + grid is loaded before row r's reduction.</summary>
    private static void RmsPersistent(ArrayView<float> x, ArrayView<float> weight, ArrayView<float> y, int rows)
    {
        int thread = Group.IdxX;
        var xs = x.Cast<Float4>();
        var ws = weight.Cast<Float4>();
        var ys = y.Cast<Float4>();
        var warpSums = SharedMemory.Allocate<float>(32); // two sets of 14, by row parity, so one barrier per row suffices
        Float4 g0 = ws[thread], g1 = ws[thread + 448], g2 = ws[thread + 896], g3 = ws[thread + 1344];
        int row = Grid.IdxX, parity = 0;
        long at = (long)Math.Min(row, rows - 1) * Vectors + thread;
        Float4 v0 = xs[at], v1 = xs[at + 448], v2 = xs[at + 896], v3 = xs[at + 1344];
        for (; row < rows; row += Grid.DimX)
        {
            float sum = Squares(v0) + Squares(v1) + Squares(v2) + Squares(v3);
            long next = (long)Math.Min(row + Grid.DimX, rows - 1) * Vectors + thread;
            Float4 n0 = xs[next], n1 = xs[next + 448], n2 = xs[next + 896], n3 = xs[next + 1344];
            for (int offset = 16; offset >= 1; offset /= 2) sum += Warp.ShuffleXor(sum, offset);
            if (Warp.LaneIdx == 0) warpSums[(16 * parity) + Warp.WarpIdx] = sum;
            Group.Barrier();
            sum = 0f;
            for (int i = 0; i < 14; i++) sum += warpSums[(16 * parity) + i];
            float inverse = 1f / MathF.Sqrt((sum * (1f / 7168f)) + DeepSeekV3.Kernels.RmsNormEpsilon);
            long here = (long)row * Vectors + thread;
            ys[here] = Scale(v0, inverse, g0);
            ys[here + 448] = Scale(v1, inverse, g1);
            ys[here + 896] = Scale(v2, inverse, g2);
            ys[here + 1344] = Scale(v3, inverse, g3);
            v0 = n0; v1 = n1; v2 = n2; v3 = n3;
            parity ^= 1;
        }
    }

    private static Float4 LoadStreaming(long address)
    {
        Output<float> a = default, b = default, c = default, d = default;
        Input<long> at = address;
        CudaAsm.EmitRef("ld.global.nc.L1::no_allocate.L2::256B.v4.f32 {%0, %1, %2, %3}, [%4];", ref a, ref b, ref c, ref d, ref at);
        return new Float4(a.Value, b.Value, c.Value, d.Value);
    }

    private static Float4 LoadPlain(long address)
    {
        Output<float> a = default, b = default, c = default, d = default;
        Input<long> at = address;
        CudaAsm.EmitRef("ld.global.nc.v4.f32 {%0, %1, %2, %3}, [%4];", ref a, ref b, ref c, ref d, ref at);
        return new Float4(a.Value, b.Value, c.Value, d.Value);
    }

    private static void StoreStreaming(long address, Float4 v) =>
        CudaAsm.Emit("st.global.cs.v4.f32 [%0], {%1, %2, %3, %4};", address, v.X, v.Y, v.Z, v.W);

    private static void StorePlain(long address, Float4 v) =>
        CudaAsm.Emit("st.global.v4.f32 [%0], {%1, %2, %3, %4};", address, v.X, v.Y, v.Z, v.W);

    /// <summary>256 × 7 through raw addresses; hints: bit 0 = L2::256B loads that skip L1, bit 1 = evict-first (.cs) stores.</summary>
    private static void Rms256By7Hinted(long x, long weight, long y, int hints)
    {
        int thread = Group.IdxX;
        long row = ((long)Grid.IdxX * Vectors + thread) * 16;
        bool hintLoads = (hints & 1) != 0, hintStores = (hints & 2) != 0;
        Float4 v0 = hintLoads ? LoadStreaming(x + row) : LoadPlain(x + row);
        Float4 v1 = hintLoads ? LoadStreaming(x + row + 4096) : LoadPlain(x + row + 4096);
        Float4 v2 = hintLoads ? LoadStreaming(x + row + 8192) : LoadPlain(x + row + 8192);
        Float4 v3 = hintLoads ? LoadStreaming(x + row + 12288) : LoadPlain(x + row + 12288);
        Float4 v4 = hintLoads ? LoadStreaming(x + row + 16384) : LoadPlain(x + row + 16384);
        Float4 v5 = hintLoads ? LoadStreaming(x + row + 20480) : LoadPlain(x + row + 20480);
        Float4 v6 = hintLoads ? LoadStreaming(x + row + 24576) : LoadPlain(x + row + 24576);
        float inverse = RowSum(Squares(v0) + Squares(v1) + Squares(v2) + Squares(v3) + Squares(v4) + Squares(v5) + Squares(v6), 8);
        long w = weight + (thread * 16L);
        Float4 y0 = Scale(v0, inverse, LoadPlain(w)), y1 = Scale(v1, inverse, LoadPlain(w + 4096)), y2 = Scale(v2, inverse, LoadPlain(w + 8192));
        Float4 y3 = Scale(v3, inverse, LoadPlain(w + 12288)), y4 = Scale(v4, inverse, LoadPlain(w + 16384)), y5 = Scale(v5, inverse, LoadPlain(w + 20480));
        Float4 y6 = Scale(v6, inverse, LoadPlain(w + 24576));
        if (hintStores)
        {
            StoreStreaming(y + row, y0); StoreStreaming(y + row + 4096, y1); StoreStreaming(y + row + 8192, y2); StoreStreaming(y + row + 12288, y3);
            StoreStreaming(y + row + 16384, y4); StoreStreaming(y + row + 20480, y5); StoreStreaming(y + row + 24576, y6);
        }
        else
        {
            StorePlain(y + row, y0); StorePlain(y + row + 4096, y1); StorePlain(y + row + 8192, y2); StorePlain(y + row + 12288, y3);
            StorePlain(y + row + 16384, y4); StorePlain(y + row + 20480, y5); StorePlain(y + row + 24576, y6);
        }
    }
}
