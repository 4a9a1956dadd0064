using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;

namespace ModelCompiler.Gpu.Benchmarks;

/// <summary>Random device buffers and device-side timing.</summary>
internal sealed class Bench(GpuDevice device, bool smoke)
{
    private const int Burst = 10, Repetitions = 30, WarmUp = 3;
    private static int s_stream = Environment.TickCount;

    public GpuDevice Device => device;

    /// <summary>Uniform values in [offset − scale, offset + scale) (fresh each run, never zeros).</summary>
    public MemoryBuffer1D<float, Stride1D.Dense> Random(long length, float scale, float offset = 0f)
    {
        var values = new float[length];
        Fill(values.Length, (i, random) => values[i] = offset + (scale * ((2f * random.NextSingle()) - 1f)));
        return device.Accelerator.Allocate1D(values);
    }

    /// <summary>Normal-ish bf16 values (the sum of three uniforms) times <paramref name="scale"/>, as raw bits.</summary>
    public MemoryBuffer1D<ushort, Stride1D.Dense> RandomBf16(long length, float scale)
    {
        var values = new ushort[length];
        Fill(values.Length, (i, random) => values[i] = Bf16.FromFloat(scale * (random.NextSingle() + random.NextSingle() + random.NextSingle() - 1.5f) * 2f));
        return device.Accelerator.Allocate1D(values);
    }

    /// <summary>Uniformly drawn E4M3 codes on the host (fresh each run), the NaN codes (0x7F, 0xFF) replaced by 1.0 (0x38).</summary>
    public static byte[] RandomE4M3Codes(long length)
    {
        var codes = new byte[length];
        Fill(codes.Length, (i, random) =>
        {
            byte code = (byte)random.Next(256);
            codes[i] = (code & 0x7F) == 0x7F ? (byte)0x38 : code;
        });
        return codes;
    }

    private static void Fill(long length, Action<int, Random> set)
    {
        const int Block = 1 << 20;
        Parallel.For(0, (int)((length + Block - 1) / Block), block =>
        {
            var random = new Random(Interlocked.Increment(ref s_stream) * 7919 + block);
            int end = (int)Math.Min(length, ((long)block + 1) * Block);
            for (int i = block * Block; i < end; i++) set(i, random);
        });
    }

    /// <summary>Median milliseconds per launch: device events around bursts of 10 launches (a stopwatch in smoke mode).</summary>
    public double Time(Action launch)
    {
        for (int i = 0; i < WarmUp; i++) launch();
        device.Synchronize();
        var times = new double[smoke ? 3 : Repetitions];
        var stream = device.Accelerator.DefaultStream;
        for (int r = 0; r < times.Length; r++)
        {
            if (smoke)
            {
                var watch = Stopwatch.StartNew();
                for (int i = 0; i < Burst; i++) launch();
                device.Synchronize();
                times[r] = watch.Elapsed.TotalMilliseconds / Burst;
                continue;
            }

            using var start = stream.AddProfilingMarker();
            for (int i = 0; i < Burst; i++) launch();
            using var end = stream.AddProfilingMarker();
            end.Synchronize();
            times[r] = end.MeasureFrom(start).TotalMilliseconds / Burst;
        }

        Array.Sort(times);
        return times[times.Length / 2];
    }

    /// <summary>Rows to check against the CPU reference: the first, the last and random ones in between.</summary>
    public int[] SampleRows(int rows, int count)
    {
        var random = new Random(Environment.TickCount);
        return new[] { 0, rows - 1 }.Concat(Enumerable.Range(0, count).Select(_ => random.Next(rows))).Distinct().Where(r => r >= 0 && r < rows).ToArray();
    }
}

/// <summary>One line of the table.</summary>
internal sealed record Row(string Op, string Shape, double Ms, double Bytes, double Flops, double Error, string TorchKey)
{
    /// <summary>The error a correct kernel stays under: FP32 rounding, one E4M3 step on a rare tie, bf16 probabilities in MLA.</summary>
    public double Tolerance => TorchKey switch
    {
        "rmsnorm" or "rmsnorm_1536" or "rmsnorm_512" or "swiglu" or "rope" or "dequant" => 1e-5,
        "bf16_gemm" => 1e-5,
        "fp8_gemm" => 1e-3,
        "router" => 1e-3,
        "mla_decode_128h" or "mla_decode_16h" => 2e-2,
        _ => 1e-2,
    };
}
