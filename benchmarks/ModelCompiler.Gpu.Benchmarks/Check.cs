using ILGPU;
using ILGPU.Runtime;
using Samples.DeepSeekV3;

namespace ModelCompiler.Gpu.Benchmarks;

/// <summary>CPU references, in double precision, on sampled rows of each kernel's output: ‖out − ref‖ / ‖ref‖ over the sample.</summary>
internal static class Check
{
    private static T[] Get<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer, long offset, long length)
        where T : unmanaged => buffer.View.SubView(offset, length).GetAsArray1D();

    private sealed class Error
    {
        private double _difference, _reference;

        public void Add(double actual, double expected)
        {
            _difference += (actual - expected) * (actual - expected);
            _reference += expected * expected;
        }

        public double Value => Math.Sqrt(_difference / Math.Max(_reference, 1e-300));
    }

    private static double[] Normalised(float[] x, float[] weight)
    {
        double sum = x.Sum(v => (double)v * v);
        double inverse = 1 / Math.Sqrt((sum / x.Length) + DeepSeekV3.Kernels.RmsNormEpsilon);
        return x.Select((v, i) => v * inverse * weight[i]).ToArray();
    }

    public static double RmsNorm(Bench bench, MemoryBuffer1D<float, Stride1D.Dense> x, MemoryBuffer1D<float, Stride1D.Dense> weight, MemoryBuffer1D<float, Stride1D.Dense> y, int width)
    {
        var error = new Error();
        var w = weight.GetAsArray1D();
        foreach (int row in bench.SampleRows((int)(x.Length / width), 30))
        {
            var expected = Normalised(Get(x, (long)row * width, width), w);
            var actual = Get(y, (long)row * width, width);
            for (int i = 0; i < width; i++) error.Add(actual[i], expected[i]);
        }

        return error.Value;
    }

    /// <summary>Dequantised codes against act_quant's rule applied to the reference values (a rare tie may land one step away).</summary>
    private static void Quantized(Error error, double[] expected, byte[] codes, float[] scales)
    {
        for (int tile = 0; tile < scales.Length; tile++)
        {
            double amax = 0;
            for (int i = 0; i < 128; i++) amax = Math.Max(amax, Math.Abs(expected[(tile * 128) + i]));
            float scale = (float)(Math.Max(amax, E4M3.AmaxFloor) / E4M3.Max);
            for (int i = 0; i < 128; i++)
            {
                int at = (tile * 128) + i;
                double reference = E4M3.Decode(E4M3.Encode((float)expected[at] / scale)) * (double)scale;
                error.Add(E4M3.Decode(codes[at]) * (double)scales[tile], reference);
            }
        }
    }

    public static double RmsNormQuant(Bench bench, MemoryBuffer1D<float, Stride1D.Dense> x, MemoryBuffer1D<float, Stride1D.Dense> weight, MemoryBuffer1D<byte, Stride1D.Dense> codes, MemoryBuffer1D<float, Stride1D.Dense> scales, int width)
    {
        var error = new Error();
        var w = weight.GetAsArray1D();
        foreach (int row in bench.SampleRows((int)(x.Length / width), 30))
        {
            Quantized(error, Normalised(Get(x, (long)row * width, width), w), Get(codes, (long)row * width, width), Get(scales, (long)row * width / 128, width / 128));
        }

        return error.Value;
    }

    public static double ActQuant(Bench bench, MemoryBuffer1D<ushort, Stride1D.Dense> x, MemoryBuffer1D<byte, Stride1D.Dense> codes, MemoryBuffer1D<float, Stride1D.Dense> scales, int width)
    {
        var error = new Error();
        foreach (int row in bench.SampleRows((int)(x.Length / width), 30))
        {
            var values = Get(x, (long)row * width, width).Select(b => (double)Bf16.ToFloat(b)).ToArray();
            Quantized(error, values, Get(codes, (long)row * width, width), Get(scales, (long)row * width / 128, width / 128));
        }

        return error.Value;
    }

    public static double SwiGluQuant(Bench bench, MemoryBuffer1D<float, Stride1D.Dense> a, MemoryBuffer1D<float, Stride1D.Dense> b, MemoryBuffer1D<byte, Stride1D.Dense> codes, MemoryBuffer1D<float, Stride1D.Dense> scales, int width)
    {
        var error = new Error();
        foreach (int row in bench.SampleRows((int)(a.Length / width), 30))
        {
            var gate = Get(a, (long)row * width, width);
            var up = Get(b, (long)row * width, width);
            var values = gate.Select((g, i) => g / (1 + Math.Exp(-g)) * up[i]).ToArray();
            Quantized(error, values, Get(codes, (long)row * width, width), Get(scales, (long)row * width / 128, width / 128));
        }

        return error.Value;
    }

    /// <summary>
    /// DeepSeek's Gate in double precision on sampled tokens. The error is the share of tokens whose experts differ (a near tie
    /// may flip under ex2.approx) plus the gate weights' relative error on the tokens that agree.
    /// </summary>
    public static double Route(Bench bench, MemoryBuffer1D<float, Stride1D.Dense> logits, MemoryBuffer1D<float, Stride1D.Dense> bias, MemoryBuffer1D<int, Stride1D.Dense> ids, MemoryBuffer1D<float, Stride1D.Dense> weights)
    {
        const int E = DeepSeekV3.Kernels.RoutedExperts, K = DeepSeekV3.Kernels.ActivatedExperts, G = DeepSeekV3.Kernels.ExpertGroups, KeepGroups = DeepSeekV3.Kernels.GroupsPerToken;
        var b = bias.GetAsArray1D();
        var error = new Error();
        int tokens = (int)(logits.Length / E), differing = 0, sampled = 0;
        foreach (int token in bench.SampleRows(tokens, 500))
        {
            sampled++;
            var s = Get(logits, (long)token * E, E).Select(l => 1 / (1 + Math.Exp(-l))).ToArray();
            var q = s.Select((v, e) => v + b[e]).ToArray();
            var groupScore = Enumerable.Range(0, G).Select(g => q.Skip(g * (E / G)).Take(E / G).OrderByDescending(v => v).Take(2).Sum()).ToArray();
            var kept = Enumerable.Range(0, G).OrderByDescending(g => groupScore[g]).ThenBy(g => g).Take(KeepGroups).ToHashSet();
            var chosen = Enumerable.Range(0, E).Where(e => kept.Contains(e / (E / G))).OrderByDescending(e => q[e]).ThenBy(e => e).Take(K).ToArray();
            double total = chosen.Sum(e => s[e]);
            var actualIds = Get(ids, (long)token * K, K);
            if (!actualIds.SequenceEqual(chosen))
            {
                differing++;
                continue;
            }

            var actualWeights = Get(weights, (long)token * K, K);
            for (int j = 0; j < K; j++) error.Add(actualWeights[j], s[chosen[j]] / total * 2.5);
        }

        if (differing > 0) Console.Error.WriteLine($"router: {differing} of {sampled} sampled tokens chose other experts");
        return ((double)differing / sampled) + error.Value;
    }

    /// <summary>Absorbed MLA decoding in double precision for sampled (sequence, head) pairs.</summary>
    public static double Mla(Bench bench, float scale, int heads, int length, MemoryBuffer1D<ushort, Stride1D.Dense> queryLatent, MemoryBuffer1D<ushort, Stride1D.Dense> queryRope,
        MemoryBuffer1D<ushort, Stride1D.Dense> latentCache, MemoryBuffer1D<ushort, Stride1D.Dense> ropeCache, MemoryBuffer1D<float, Stride1D.Dense> output, int[]? lengths = null)
    {
        const int Latent = 512, Rope = 64;
        int batch = (int)(queryLatent.Length / heads / Latent);
        var error = new Error();
        var random = new Random(Environment.TickCount);
        for (int sample = 0; sample < 8; sample++)
        {
            int sequence = random.Next(batch), head = random.Next(heads);
            int attended = lengths?[sequence] ?? length; // the cache holds `length` tokens per sequence; the first `attended` count
            var q = Get(queryLatent, ((long)sequence * heads + head) * Latent, Latent).Select(Bf16.ToFloat).ToArray();
            var qr = Get(queryRope, ((long)sequence * heads + head) * Rope, Rope).Select(Bf16.ToFloat).ToArray();
            var c = Get(latentCache, (long)sequence * length * Latent, (long)length * Latent).Select(Bf16.ToFloat).ToArray();
            var k = Get(ropeCache, (long)sequence * length * Rope, (long)length * Rope).Select(Bf16.ToFloat).ToArray();
            var scores = new double[attended];
            for (int t = 0; t < attended; t++)
            {
                double dot = 0;
                for (int d = 0; d < Latent; d++) dot += (double)q[d] * c[(t * Latent) + d];
                for (int d = 0; d < Rope; d++) dot += (double)qr[d] * k[(t * Rope) + d];
                scores[t] = dot * scale;
            }

            double max = scores.Max(), sum = scores.Sum(v => Math.Exp(v - max));
            var expected = new double[Latent];
            for (int t = 0; t < attended; t++)
            {
                double p = Math.Exp(scores[t] - max) / sum;
                for (int d = 0; d < Latent; d++) expected[d] += p * c[(t * Latent) + d];
            }

            var actual = Get(output, ((long)sequence * heads + head) * Latent, Latent);
            for (int d = 0; d < Latent; d++) error.Add(actual[d], expected[d]);
        }

        return error.Value;
    }

    public static double SwiGlu(Bench bench, MemoryBuffer1D<float, Stride1D.Dense> a, MemoryBuffer1D<float, Stride1D.Dense> b, MemoryBuffer1D<float, Stride1D.Dense> y, int width)
    {
        var error = new Error();
        foreach (int row in bench.SampleRows((int)(a.Length / width), 30))
        {
            var gate = Get(a, (long)row * width, width);
            var up = Get(b, (long)row * width, width);
            var actual = Get(y, (long)row * width, width);
            for (int i = 0; i < width; i++) error.Add(actual[i], gate[i] / (1 + Math.Exp(-gate[i])) * up[i]);
        }

        return error.Value;
    }

    /// <summary>Interleaved rotation of sampled tokens (positions tokens … 2·tokens − 1) from the inputs kept on the host.</summary>
    public static double Rope(Bench bench, float[] q0, float[] k0, MemoryBuffer1D<float, Stride1D.Dense> q, MemoryBuffer1D<float, Stride1D.Dense> k, float[] cos, float[] sin, int tokens)
    {
        const int Heads = DeepSeekV3.Kernels.Heads, Head = DeepSeekV3.Kernels.QueryHeadDim, Nope = DeepSeekV3.Kernels.NopeHeadDim, Rope = DeepSeekV3.Kernels.RopeHeadDim;
        var error = new Error();
        foreach (int token in bench.SampleRows(tokens, 30))
        {
            var qActual = Get(q, (long)token * Heads * Head, Heads * Head);
            var kActual = Get(k, (long)token * Rope, Rope);
            for (int row = 0; row <= Heads; row++)
            {
                for (int pair = 0; pair < Rope / 2; pair++)
                {
                    int angle = ((tokens + token) * (Rope / 2)) + pair;
                    long at = row < Heads ? ((long)token * Heads + row) * Head + Nope + (2 * pair) : ((long)token * Rope) + (2 * pair);
                    double x0 = row < Heads ? q0[at] : k0[at], x1 = row < Heads ? q0[at + 1] : k0[at + 1];
                    int local = row < Heads ? (int)(at - ((long)token * Heads * Head)) : 2 * pair;
                    var actual = row < Heads ? qActual : kActual;
                    error.Add(actual[local], (x0 * cos[angle]) - (x1 * sin[angle]));
                    error.Add(actual[local + 1], (x0 * sin[angle]) + (x1 * cos[angle]));
                }
            }
        }

        return error.Value;
    }

    /// <summary>Sampled rows of the dequantised weight against E4M3 decoding × the block's scale on the host.</summary>
    public static double Dequantize(Bench bench, byte[] codes, MemoryBuffer1D<float, Stride1D.Dense> scales, MemoryBuffer1D<float, Stride1D.Dense> weight, int rows, int columns)
    {
        var s = scales.GetAsArray1D();
        var error = new Error();
        foreach (int row in bench.SampleRows(rows, 30))
        {
            var actual = Get(weight, (long)row * columns, columns);
            for (int c = 0; c < columns; c++)
            {
                error.Add(actual[c], E4M3.Decode(codes[((long)row * columns) + c]) * (double)s[(row / 128 * ((columns + 127) / 128)) + (c / 128)]);
            }
        }

        return error.Value;
    }

    /// <summary>Sampled entries of C = A·Bᵀ in double precision.</summary>
    public static double Gemm(Bench bench, MemoryBuffer1D<ushort, Stride1D.Dense> a, MemoryBuffer1D<ushort, Stride1D.Dense> b, MemoryBuffer1D<float, Stride1D.Dense> c, int m, int n, int k)
    {
        var error = new Error();
        var random = new Random(Environment.TickCount);
        for (int sample = 0; sample < 64; sample++)
        {
            int i = random.Next(m), j = random.Next(n);
            var row = Get(a, (long)i * k, k);
            var column = Get(b, (long)j * k, k);
            double dot = 0;
            for (int x = 0; x < k; x++) dot += (double)Bf16.ToFloat(row[x]) * Bf16.ToFloat(column[x]);
            error.Add(Get(c, ((long)i * n) + j, 1)[0], dot);
        }

        return error.Value;
    }

    /// <summary>Sampled entries (and the corners) of the FP8 GEMM: Σ over k-blocks of the decoded codes' dot product × both scales, in double.</summary>
    public static double Fp8Gemm(byte[] a, float[] aScales, byte[] w, float[] wScales, MemoryBuffer1D<float, Stride1D.Dense> c, int m, int n, int k)
    {
        var error = new Error();
        var random = new Random(Environment.TickCount);
        int blocks = k / 128;
        var entries = new[] { (0, 0), (m - 1, n - 1) }.Concat(Enumerable.Range(0, 254).Select(_ => (random.Next(m), random.Next(n))));
        foreach (var (i, j) in entries)
        {
            double sum = 0;
            for (int b = 0; b < blocks; b++)
            {
                double dot = 0;
                for (int x = b * 128; x < (b + 1) * 128; x++) dot += (double)E4M3.Decode(a[((long)i * k) + x]) * E4M3.Decode(w[((long)j * k) + x]);
                sum += dot * aScales[((long)i * blocks) + b] * wScales[((long)(j / 128) * blocks) + b];
            }

            error.Add(Get(c, ((long)i * n) + j, 1)[0], sum);
        }

        return error.Value;
    }
}
