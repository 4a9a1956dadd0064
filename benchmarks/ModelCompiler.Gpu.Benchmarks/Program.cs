// The generated kernels on a GPU at DeepSeek-V3's (and V2-Lite's) shapes: each output checked against a CPU reference on
// sampled rows (‖out − ref‖ / ‖ref‖), each timed with device events around bursts of 10 launches (median of 30 bursts),
// and printed in one table beside PyTorch's eager and torch.compile times from benchmarks/gpu/torch_ops.py.
//
//   ModelCompiler.Gpu.Benchmarks [--torch torch.json] [--smoke] [--mla] [--fp8] [--probe] [--rows-probe] [--dequant-probe] [--ptx KERNEL]
//
// --smoke runs every case at small shapes on whatever device there is (OpenCL/PoCL here): it checks the program, not speed.
// --mla runs only MLA decoding (both kernels on Hopper, ragged lengths with NaN past them), --fp8 only the FP8 GEMM; --probe checks warp-group MMA's
// shared-memory descriptor conventions on a Hopper GPU; --rows-probe and --dequant-probe time variants of RMSNorm and of the FP8
// weight dequantisation (RowsProbe.cs, DequantProbe.cs); --ptx prints one DeepSeekV3 CUDA kernel's PTX for ptxas.
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Gpu;
using ModelCompiler.Gpu.Benchmarks;
using Samples.DeepSeekV3;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
bool smoke = args.Contains("--smoke");
int ptxAt = Array.IndexOf(args, "--ptx");
if (ptxAt >= 0) // the sm_90a PTX of one of DeepSeekV3's CUDA kernels, for ptxas on the GPU machine (benchmarks/gpu/ptxas.sh)
{
    Console.Write(Ptx.TargetHopperSpecific(Ptx.Compile(typeof(DeepSeekV3.Kernels.Cuda).GetMethod(args[ptxAt + 1])!)));
    return 0;
}

bool mlaOnly = args.Contains("--mla"), fp8Only = args.Contains("--fp8");

int torchAt = Array.IndexOf(args, "--torch");
var torch = torchAt >= 0 ? JsonDocument.Parse(File.ReadAllText(args[torchAt + 1])).RootElement : (JsonElement?)null;

using var device = smoke ? GpuDevice.CreateDefault() : GpuDevice.Create(GpuBackend.Cuda, profiling: true);
Console.Error.WriteLine($"device: {device.Name} ({device.Backend}); inputs seeded from the clock");
if (args.Contains("--probe"))
{
    WarpGroupProbe.Run(device);
    return 0;
}

var bench = new Bench(device, smoke);
if (args.Contains("--rows-probe"))
{
    RowsProbe.Run(device, bench);
    return 0;
}

if (args.Contains("--dequant-probe"))
{
    DequantProbe.Run(device, bench);
    return 0;
}

var rows = new List<Row>();
var v3 = new DeepSeekV3.Kernels.Launcher(device);
var lite = new DeepSeekV2Lite.Kernels.Launcher(device);

if (!mlaOnly && !fp8Only)
{
// ---- RMSNorm, [32768 × 7168] FP32 ------------------------------------------------------------------------------------
{
    int n = smoke ? 64 : 32768, width = DeepSeekV3.Kernels.Hidden;
    using var x = bench.Random(n * width, 3f);
    using var weight = bench.Random(width, 0.5f, 1f);
    using var y = device.Accelerator.Allocate1D<float>((long)n * width);
    double ms = bench.Time(() => v3.RmsNormHidden(x.View, weight.View, y.View));
    double error = Check.RmsNorm(bench, x, weight, y, width);
    rows.Add(new Row("RMSNorm", $"[{n}×{width}] fp32", ms, Bytes: 2.0 * n * width * 4, Flops: 0, error, "rmsnorm"));

    using var codes = device.Accelerator.Allocate1D<byte>((long)n * width);
    using var scales = device.Accelerator.Allocate1D<float>((long)n * width / 128);
    double fusedMs = bench.Time(() => v3.RmsNormQuantHidden(x.View, weight.View, codes.View, scales.View));
    double fusedError = Check.RmsNormQuant(bench, x, weight, codes, scales, width);
    rows.Add(new Row("RMSNorm + act_quant (fused)", $"[{n}×{width}] fp32 → e4m3", fusedMs, Bytes: (4.0 + 1) * n * width + 4.0 * n * width / 128, Flops: 0, fusedError, "rmsnorm_quant"));
}

// ---- The other kernels at V3's shapes: latent norms, SwiGLU, RoPE, FP8 weight dequantisation ----
foreach (var (label, width) in new[] { ("RMSNorm, query latent", DeepSeekV3.Kernels.QueryLatent), ("RMSNorm, key-value latent", DeepSeekV3.Kernels.KeyValueLatent) })
{
    int n = smoke ? 64 : 32768;
    using var x = bench.Random((long)n * width, 3f);
    using var weight = bench.Random(width, 0.5f, 1f);
    using var y = device.Accelerator.Allocate1D<float>((long)n * width);
    Action run = width == DeepSeekV3.Kernels.QueryLatent ? () => v3.RmsNormQueryLatent(x.View, weight.View, y.View) : () => v3.RmsNormKeyValueLatent(x.View, weight.View, y.View);
    double ms = bench.Time(run);
    rows.Add(new Row(label, $"[{n}×{width}] fp32", ms, Bytes: 8.0 * n * width, Flops: 0, Check.RmsNorm(bench, x, weight, y, width), $"rmsnorm_{width}"));
}

{
    int n = smoke ? 32 : 16384, width = DeepSeekV3.Kernels.ExpertWidth;
    using var a = bench.Random((long)n * width, 2f);
    using var b = bench.Random((long)n * width, 1f);
    using var y = device.Accelerator.Allocate1D<float>((long)n * width);
    double ms = bench.Time(() => v3.SwiGlu(a.View, b.View, y.View));
    rows.Add(new Row("SwiGLU", $"[{n}×{width}] fp32", ms, Bytes: 12.0 * n * width, Flops: 0, Check.SwiGlu(bench, a, b, y, width), "swiglu"));
}

{
    int tokens = smoke ? 16 : 4096, heads = DeepSeekV3.Kernels.Heads, head = DeepSeekV3.Kernels.QueryHeadDim, rope = DeepSeekV3.Kernels.RopeHeadDim;
    using var q = bench.Random((long)tokens * heads * head, 1f);
    using var k = bench.Random((long)tokens * rope, 1f);
    var angles = Enumerable.Range(0, 2 * tokens).SelectMany(p => Enumerable.Range(0, rope / 2).Select(i => p * Math.Pow(10000, -2.0 * i / rope))).ToArray();
    using var cos = device.Accelerator.Allocate1D(angles.Select(a => (float)Math.Cos(a)).ToArray());
    using var sin = device.Accelerator.Allocate1D(angles.Select(a => (float)Math.Sin(a)).ToArray());
    using var positions = device.Accelerator.Allocate1D(Enumerable.Range(tokens, tokens).ToArray());
    var q0 = q.GetAsArray1D();
    var k0 = k.GetAsArray1D();
    v3.RotaryEmbedding(q.View, k.View, positions.View, cos.View, sin.View);
    double error = Check.Rope(bench, q0, k0, q, k, cos.GetAsArray1D(), sin.GetAsArray1D(), tokens);
    double ms = bench.Time(() => v3.RotaryEmbedding(q.View, k.View, positions.View, cos.View, sin.View));
    rows.Add(new Row("RoPE (in place)", $"{tokens} tokens × {heads + 1} × {rope}", ms, Bytes: 8.0 * tokens * (heads + 1) * rope, Flops: 0, error, "rope"));
}

{
    int n = smoke ? 256 : 7168, k = smoke ? 512 : 18432;
    var bytes = Bench.RandomE4M3Codes((long)n * k);
    using var codes = device.Accelerator.Allocate1D(bytes);
    using var scales = bench.Random((long)((n + 127) / 128) * ((k + 127) / 128), 0.005f, 0.006f);
    using var weight = device.Accelerator.Allocate1D<float>((long)n * k);
    double ms = bench.Time(() => v3.DequantizeWeight(codes.View, scales.View, weight.View, n, k));
    rows.Add(new Row("FP8 weight dequantisation", $"[{n}×{k}] e4m3 → fp32", ms, Bytes: 5.0 * n * k, Flops: 0, Check.Dequantize(bench, bytes, scales, weight, n, k), "dequant"));
}

// ---- act_quant, [16384 × 7168] bf16 ----------------------------------------------------------------------------------
{
    int n = smoke ? 32 : 16384, width = DeepSeekV3.Kernels.Hidden;
    using var x = bench.RandomBf16(n * width, 4f);
    using var codes = device.Accelerator.Allocate1D<byte>((long)n * width);
    using var scales = device.Accelerator.Allocate1D<float>((long)n * width / 128);
    double ms = bench.Time(() => v3.ActQuantHidden(x.View, codes.View, scales.View));
    double error = Check.ActQuant(bench, x, codes, scales, width);
    rows.Add(new Row("act_quant 1×128", $"[{n}×{width}] bf16 → e4m3", ms, Bytes: 3.0 * n * width + 4.0 * n * width / 128, Flops: 0, error, "act_quant"));
}

// ---- SwiGLU + act_quant, [16384 × 2048] ------------------------------------------------------------------------------
{
    int n = smoke ? 32 : 16384, width = DeepSeekV3.Kernels.ExpertWidth;
    using var a = bench.Random(n * width, 2f);
    using var b = bench.Random(n * width, 1f);
    using var codes = device.Accelerator.Allocate1D<byte>((long)n * width);
    using var scales = device.Accelerator.Allocate1D<float>((long)n * width / 128);
    double ms = bench.Time(() => v3.SwiGluQuantExpert(a.View, b.View, codes.View, scales.View));
    double error = Check.SwiGluQuant(bench, a, b, codes, scales, width);
    rows.Add(new Row("SwiGLU + act_quant (fused)", $"[{n}×{width}] fp32 → e4m3", ms, Bytes: 9.0 * n * width + 4.0 * n * width / 128, Flops: 0, error, "swiglu_quant"));
}

// ---- Router, [16384 × 256] -------------------------------------------------------------------------------------------
{
    int n = smoke ? 64 : 16384, experts = DeepSeekV3.Kernels.RoutedExperts, k = DeepSeekV3.Kernels.ActivatedExperts;
    using var logits = bench.Random(n * experts, 2f);
    using var bias = bench.Random(experts, 0.3f);
    using var ids = device.Accelerator.Allocate1D<int>((long)n * k);
    using var weights = device.Accelerator.Allocate1D<float>((long)n * k);
    double ms = bench.Time(() => v3.Route(logits.View, bias.View, ids.View, weights.View));
    double error = Check.Route(bench, logits, bias, ids, weights);
    rows.Add(new Row("MoE router (V3 gate)", $"[{n}×{experts}] → top-{k}", ms, Bytes: 4.0 * n * experts + 8.0 * n * k, Flops: 0, error, "router"));
}

}

// ---- MLA decode, batch 64 × 4096 cached tokens, 128 heads (V3) and 16 heads (V2-Lite) --------------------------------
foreach (var (label, heads, key) in fp8Only ? [] : new[] { ("MLA decode, 128 heads (V3)", 128, "mla_decode_128h"), ("MLA decode, 16 heads (V2-Lite)", 16, "mla_decode_16h") })
{
    int batch = smoke ? 2 : 64, length = smoke ? 100 : 4096, latent = 512, rope = 64;
    using var queryLatent = bench.RandomBf16((long)batch * heads * latent, 1f);
    using var queryRope = bench.RandomBf16((long)batch * heads * rope, 1f);
    using var latentCache = bench.RandomBf16((long)batch * length * latent, 1f);
    using var ropeCache = bench.RandomBf16((long)batch * length * rope, 1f);
    using var lengths = device.Accelerator.Allocate1D(Enumerable.Repeat(length, batch).ToArray());
    using var output = device.Accelerator.Allocate1D<float>((long)batch * heads * latent);
    // Decodes the batch over a cache and its lengths with the model's launcher; the timed cases use the full cache.
    Action<ArrayView<ushort>, ArrayView<ushort>, ArrayView<int>, int> decodeOver = heads == 128
        ? (latents, ropes, cached, splits) => v3.MlaDecode(queryLatent.View, queryRope.View, latents, ropes, cached, output.View, length, splits)
        : (latents, ropes, cached, splits) => lite.MlaDecode(queryLatent.View, queryRope.View, latents, ropes, cached, output.View, length, splits);
    Action<int> decode = splits => decodeOver(latentCache.View, ropeCache.View, lengths.View, splits);
    float softmaxScale = heads == 128 ? DeepSeekV3.Kernels.SoftmaxScale : DeepSeekV2Lite.Kernels.SoftmaxScale;
    if (heads == 128 && v3.WarpGroupMma)
    {
        // The mma.sync kernel the warp-group one replaces on Hopper, in the same run for comparison.
        v3.WarpGroupMma = false;
        double mmaMs = bench.Time(() => decode(1));
        double mmaError = Check.Mla(bench, softmaxScale, heads, length, queryLatent, queryRope, latentCache, ropeCache, output);
        rows.Add(new Row($"{label}, mma.sync kernel, 1 split", $"{batch}×{length}×{heads}h bf16", mmaMs, Bytes: 2.0 * batch * length * (latent + rope), 2.0 * batch * heads * length * (latent + rope + latent), mmaError, key));
        v3.WarpGroupMma = true;
    }

    var (bestMs, bestSplits) = (double.MaxValue, 1);
    foreach (int splits in new[] { 1, 2, 3, 4, 6, 8, 16 })
    {
        double splitMs = bench.Time(() => decode(splits));
        Console.Error.WriteLine($"{label}: {splits} split(s) {splitMs:F4} ms");
        if (splitMs < bestMs) (bestMs, bestSplits) = (splitMs, splits);
    }

    {
        // Ragged lengths with NaN past each one (what an unused cache slot may hold): the kernel must not read them into ō.
        var random = new Random(Environment.TickCount);
        var ragged = Enumerable.Range(0, batch).Select(_ => random.Next(1, length + 1)).ToArray();
        var latentHost = latentCache.GetAsArray1D();
        var ropeHost = ropeCache.GetAsArray1D();
        for (int b = 0; b < batch; b++)
        {
            Array.Fill(latentHost, (ushort)0x7FC0, (b * length + ragged[b]) * latent, (length - ragged[b]) * latent);
            Array.Fill(ropeHost, (ushort)0x7FC0, (b * length + ragged[b]) * rope, (length - ragged[b]) * rope);
        }

        using var raggedLatent = device.Accelerator.Allocate1D(latentHost);
        using var raggedRope = device.Accelerator.Allocate1D(ropeHost);
        using var raggedLengths = device.Accelerator.Allocate1D(ragged);
        foreach (int splits in new[] { 1, 3 })
        {
            decodeOver(raggedLatent.View, raggedRope.View, raggedLengths.View, splits);
            double raggedError = Check.Mla(bench, softmaxScale, heads, length, queryLatent, queryRope, raggedLatent, raggedRope, output, ragged);
            Console.Error.WriteLine($"{label}: ragged lengths {ragged.Min()}–{ragged.Max()}, NaN past each, {splits} split(s): ‖err‖/‖ref‖ {raggedError:E1}");
            rows.Add(new Row($"{label}, ragged lengths + NaN past them, {splits} split(s)", $"{batch}×≤{length}×{heads}h bf16", double.NaN, 0, 0, raggedError, key));
        }
    }

    decode(bestSplits);
    double error = Check.Mla(bench, softmaxScale, heads, length, queryLatent, queryRope, latentCache, ropeCache, output);
    double flops = 2.0 * batch * heads * length * (latent + rope + latent);
    rows.Add(new Row($"{label}, {bestSplits} split(s)", $"{batch}×{length}×{heads}h bf16", bestMs, Bytes: 2.0 * batch * length * (latent + rope), flops, error, key));
}

if (!mlaOnly && !fp8Only)
{
// ---- cuBLAS 13 bf16 GEMM (the binding for the GEMMs between fused kernels) -------------------------------------------
if (device.Backend == GpuBackend.Cuda)
{
    int m = 4096, k = 7168, n = smoke ? 256 : 16384;
    using var a = bench.RandomBf16((long)m * k, 1f);
    using var b = bench.RandomBf16((long)n * k, 1f);
    using var c = device.Accelerator.Allocate1D<float>((long)m * n);
    using var blas = new CuBlas(device.Accelerator.DefaultStream);
    double ms = bench.Time(() => blas.GemmBf16(a.View, b.View, c.View, m, n, k));
    double error = Check.Gemm(bench, a, b, c, m, n, k);
    rows.Add(new Row("cuBLAS 13 GemmEx (binding)", $"{m}×{k}×{n} bf16 → fp32", ms, Bytes: 0, Flops: 2.0 * m * n * k, error, "bf16_gemm"));
}

}

// ---- FP8 GEMM with 1×128 / 128×128 scaling (V3's linear layers), Hopper's warp-group MMA ------------------------------
if (!mlaOnly && (smoke || device.HasWarpGroupMma)) // in smoke runs elsewhere, the plain-loop kernel
{
    foreach (var (m, k, n) in smoke ? new[] { (200, 384, 256) } : new[] { (4096, 7168, 16384), (200, 384, 256) })
    {
        var aHost = Bench.RandomE4M3Codes((long)m * k);
        var wHost = Bench.RandomE4M3Codes((long)n * k);
        using var a = device.Accelerator.Allocate1D(aHost);
        using var w = device.Accelerator.Allocate1D(wHost);
        using var aScales = bench.Random((long)m * (k / 128), 0.004f, 0.005f);
        using var wScales = bench.Random((long)(n / 128) * (k / 128), 0.004f, 0.005f);
        using var c = device.Accelerator.Allocate1D<float>((long)m * n);
        double ms = bench.Time(() => v3.Fp8Gemm(a.View, aScales.View, w.View, wScales.View, c.View, m, n, k));
        double error = Check.Fp8Gemm(aHost, aScales.GetAsArray1D(), wHost, wScales.GetAsArray1D(), c, m, n, k);
        rows.Add(new Row(m % 128 == 0 ? "FP8 GEMM, 1×128 / 128×128 scales" : "FP8 GEMM, a partial row tile", $"{m}×{k}×{n} e4m3 → fp32", m % 128 == 0 ? ms : double.NaN, Bytes: 0, Flops: 2.0 * m * n * k, error, "fp8_gemm"));
    }
}

Table.Print(rows, torch, device.Name);
return rows.Any(r => !(r.Error <= r.Tolerance)) ? 1 : 0;
