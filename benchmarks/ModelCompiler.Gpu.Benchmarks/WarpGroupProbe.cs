// One-off probe of Hopper's warp-group MMA through ILGPU's inline PTX (run with --probe on an H200): which shared-memory
// descriptor fields (leading / stride byte offsets) describe the no-swizzle layouts the MLA kernel uses, whether the
// accumulator fragment layout is the one assumed, and whether cp.async fills shared memory addressed from the dynamic
// shared-memory symbol. Every variant is checked against a double-precision product on the host.
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace ModelCompiler.Gpu.Benchmarks;

internal static class WarpGroupProbe
{
    private const string ScoresAsm = "{\n.reg .b64 da, db;\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\nmov.b64 da, %32;\nmov.b64 db, %33;\nwgmma.fence.sync.aligned;\nwgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, da, db, p, 1, 1, 0, 0;\nadd.s64 da, da, 128;\nadd.s64 db, db, 128;\nwgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, da, db, p, 1, 1, 0, 0;\nwgmma.commit_group.sync.aligned;\nwgmma.wait_group.sync.aligned 0;\n}";
    private const string ValuesAsm = "{\n.reg .b64 da, db;\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\nmov.b64 da, %32;\nmov.b64 db, %33;\nwgmma.fence.sync.aligned;\nwgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, da, db, p, 1, 1, 0, 1;\nadd.s64 da, da, 128;\nadd.s64 db, db, 16;\nwgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, da, db, p, 1, 1, 0, 1;\nwgmma.commit_group.sync.aligned;\nwgmma.wait_group.sync.aligned 0;\n}";

    /// <summary>
    /// One warp group: D[64×64] = A[64×32] · B, A row-major in global memory, B either [64 n × 32 k] (transB 0, K-major in
    /// shared memory) or [32 k × 64 n] (transB 1, copied by cp.async into MN-major core matrices, rows k ≥ 30 zero-filled).
    /// </summary>
    public static void Kernel(ArrayView<ushort> a, ArrayView<ushort> b, long bAddress, ArrayView<float> d, int lboA, int sboA, int lboB, int sboB, int transB)
    {
        var shared = SharedMemory.GetDynamic<ushort>();
        int thread = Group.IdxX, warp = thread >> 5, lane = thread & 31, g = lane >> 2, t = lane & 3;
        CudaAsm.Emit("mov.u32 %0, __dyn_shared_alloca;", out uint sharedBase);
        // A: core matrix (k / 8, m / 8) at ((k / 8) · 8 + m / 8) · 128 bytes, row m % 8 at 16 bytes each.
        for (int i = thread; i < 64 * 32; i += 128)
        {
            int m = i / 32, k = i % 32;
            shared[(((k / 8 * 8) + (m / 8)) * 64) + ((m % 8) * 8) + (k % 8)] = a[i];
        }

        if (transB == 0)
        {
            for (int i = thread; i < 64 * 32; i += 128)
            {
                int n = i / 32, k = i % 32;
                shared[2048 + (((k / 8 * 8) + (n / 8)) * 64) + ((n % 8) * 8) + (k % 8)] = b[i];
            }
        }
        else
        {
            // B [32 k × 64 n]: 16-byte piece (k, n / 8) → core matrix (n / 8, k / 8) at ((n / 8) · 4 + k / 8) · 128, row k % 8.
            for (int piece = thread; piece < 32 * 8; piece += 128)
            {
                int k = piece / 8, block = piece % 8;
                uint target = sharedBase + 4096u + (uint)((((block * 4) + (k / 8)) * 128) + ((k % 8) * 16));
                ulong source = (ulong)bAddress + (ulong)(((k * 64) + (block * 8)) * 2);
                CudaAsm.Emit("cp.async.cg.shared.global [%0], [%1], 16, %2;", target, source, k < 30 ? 16u : 0u);
            }

            CudaAsm.Emit("cp.async.wait_all;");
        }

        CudaAsm.Emit("fence.proxy.async.shared::cta;");
        Group.Barrier();
        ulong descA = WarpGroupMma.Descriptor(sharedBase, (uint)lboA, (uint)sboA), descB = WarpGroupMma.Descriptor(sharedBase + 4096u, (uint)lboB, (uint)sboB);
        Input<ulong> da = descA, db = descB;
        Input<int> accumulate = 1;
        Ref<float> d0 = 0f, d1 = 0f, d2 = 0f, d3 = 0f;
        Ref<float> d4 = 0f, d5 = 0f, d6 = 0f, d7 = 0f;
        Ref<float> d8 = 0f, d9 = 0f, d10 = 0f, d11 = 0f;
        Ref<float> d12 = 0f, d13 = 0f, d14 = 0f, d15 = 0f;
        Ref<float> d16 = 0f, d17 = 0f, d18 = 0f, d19 = 0f;
        Ref<float> d20 = 0f, d21 = 0f, d22 = 0f, d23 = 0f;
        Ref<float> d24 = 0f, d25 = 0f, d26 = 0f, d27 = 0f;
        Ref<float> d28 = 0f, d29 = 0f, d30 = 0f, d31 = 0f;
        if (transB == 0) CudaAsm.EmitRef(ScoresAsm, ref d0, ref d1, ref d2, ref d3, ref d4, ref d5, ref d6, ref d7, ref d8, ref d9, ref d10, ref d11, ref d12, ref d13, ref d14, ref d15, ref d16, ref d17, ref d18, ref d19, ref d20, ref d21, ref d22, ref d23, ref d24, ref d25, ref d26, ref d27, ref d28, ref d29, ref d30, ref d31, ref da, ref db, ref accumulate);
        else CudaAsm.EmitRef(ValuesAsm, ref d0, ref d1, ref d2, ref d3, ref d4, ref d5, ref d6, ref d7, ref d8, ref d9, ref d10, ref d11, ref d12, ref d13, ref d14, ref d15, ref d16, ref d17, ref d18, ref d19, ref d20, ref d21, ref d22, ref d23, ref d24, ref d25, ref d26, ref d27, ref d28, ref d29, ref d30, ref d31, ref da, ref db, ref accumulate);
        int row = (warp * 16) + g;
        d[(row * 64) + 0 + (2 * t)] = d0.Value; d[(row * 64) + 0 + (2 * t) + 1] = d1.Value; d[((row + 8) * 64) + 0 + (2 * t)] = d2.Value; d[((row + 8) * 64) + 0 + (2 * t) + 1] = d3.Value;
        d[(row * 64) + 8 + (2 * t)] = d4.Value; d[(row * 64) + 8 + (2 * t) + 1] = d5.Value; d[((row + 8) * 64) + 8 + (2 * t)] = d6.Value; d[((row + 8) * 64) + 8 + (2 * t) + 1] = d7.Value;
        d[(row * 64) + 16 + (2 * t)] = d8.Value; d[(row * 64) + 16 + (2 * t) + 1] = d9.Value; d[((row + 8) * 64) + 16 + (2 * t)] = d10.Value; d[((row + 8) * 64) + 16 + (2 * t) + 1] = d11.Value;
        d[(row * 64) + 24 + (2 * t)] = d12.Value; d[(row * 64) + 24 + (2 * t) + 1] = d13.Value; d[((row + 8) * 64) + 24 + (2 * t)] = d14.Value; d[((row + 8) * 64) + 24 + (2 * t) + 1] = d15.Value;
        d[(row * 64) + 32 + (2 * t)] = d16.Value; d[(row * 64) + 32 + (2 * t) + 1] = d17.Value; d[((row + 8) * 64) + 32 + (2 * t)] = d18.Value; d[((row + 8) * 64) + 32 + (2 * t) + 1] = d19.Value;
        d[(row * 64) + 40 + (2 * t)] = d20.Value; d[(row * 64) + 40 + (2 * t) + 1] = d21.Value; d[((row + 8) * 64) + 40 + (2 * t)] = d22.Value; d[((row + 8) * 64) + 40 + (2 * t) + 1] = d23.Value;
        d[(row * 64) + 48 + (2 * t)] = d24.Value; d[(row * 64) + 48 + (2 * t) + 1] = d25.Value; d[((row + 8) * 64) + 48 + (2 * t)] = d26.Value; d[((row + 8) * 64) + 48 + (2 * t) + 1] = d27.Value;
        d[(row * 64) + 56 + (2 * t)] = d28.Value; d[(row * 64) + 56 + (2 * t) + 1] = d29.Value; d[((row + 8) * 64) + 56 + (2 * t)] = d30.Value; d[((row + 8) * 64) + 56 + (2 * t) + 1] = d31.Value;
    }

    public static void Run(GpuDevice device)
    {
        var launch = device.Load<Action<AcceleratorStream, KernelConfig, ArrayView<ushort>, ArrayView<ushort>, long, ArrayView<float>, int, int, int, int, int>>(Kernel, hopperSpecific: true);
        var random = new Random(Environment.TickCount);
        var aValues = Enumerable.Range(0, 64 * 32).Select(_ => Bf16.FromFloat((float)(random.NextDouble() * 2 - 1))).ToArray();
        var bValues = Enumerable.Range(0, 64 * 32).Select(_ => Bf16.FromFloat((float)(random.NextDouble() * 2 - 1))).ToArray();
        using var a = device.Accelerator.Allocate1D(aValues);
        using var b = device.Accelerator.Allocate1D(bValues);
        using var d = device.Accelerator.Allocate1D<float>(64 * 64);
        long bAddress = b.View.BaseView.LoadEffectiveAddressAsPtr().ToInt64();
        var config = new KernelConfig(1, 128, SharedMemoryConfig.RequestDynamic<byte>(40 * 1024));
        foreach (var (name, lboA, sboA, lboB, sboB, transB) in new[]
        {
            ("scores, LBO = K stride", 1024, 128, 1024, 128, 0),
            ("values (MN-major B), B LBO = 128 (k), SBO = 512 (n)", 1024, 128, 128, 512, 1), ("values (MN-major B), B LBO = 512 (n), SBO = 128 (k)", 1024, 128, 512, 128, 1),
        })
        {
            d.MemSetToZero();
            launch(device.Accelerator.DefaultStream, config, a.View, b.View, bAddress, d.View, lboA, sboA, lboB, sboB, transB);
            device.Synchronize();
            var result = d.GetAsArray1D();
            double worst = 0;
            for (int m = 0; m < 64; m++)
            {
                for (int n = 0; n < 64; n++)
                {
                    double expected = 0;
                    for (int k = 0; k < 32; k++)
                    {
                        double bk = transB == 0 ? Bf16.ToFloat(bValues[(n * 32) + k]) : k < 30 ? Bf16.ToFloat(bValues[(k * 64) + n]) : 0;
                        expected += Bf16.ToFloat(aValues[(m * 32) + k]) * bk;
                    }

                    worst = Math.Max(worst, Math.Abs(result[(m * 64) + n] - expected));
                }
            }

            Console.WriteLine($"probe {name}: max |error| {worst:E2} {(worst < 1e-3 ? "MATCH" : "differs")}");
        }
    }
}
