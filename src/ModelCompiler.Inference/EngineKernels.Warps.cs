using ILGPU;
using ILGPU.Runtime;
using ILGPU.Util;
using ModelCompiler.Gpu;

namespace ModelCompiler.Inference;

/// <summary>
/// The warp-per-row variants, for backends with warp shuffles (CUDA): one warp computes one dot product of a weight row
/// with an activation row, each lane reading 16 bytes at a time (8 bf16 or 4 FP32 weights) and the lanes' sums folded by
/// shuffles. The routed experts run pair-major: a warp owns one row of the expert one (token, k) pair chose, so routing
/// stays on the device and every warp has work (an expert-major layout, tried first, left a popular expert's warps to do
/// all its tokens one after another). Rows must be multiples of 8 values (16 bytes).
/// </summary>
internal static partial class EngineKernels
{
    /// <summary>Warps per group in the warp-per-row kernels.</summary>
    public const int WarpsPerGroup = Threads / 32;

    /// <summary>The warp's dot product of x[xAt, xAt + length) with weight row [wAt, wAt + length), in every lane.</summary>
    private static float WarpDot(ArrayView<float> x, long xAt, ArrayView<float> w32, ArrayView<ushort> w16, int bf16, long wAt, int length)
    {
        int lane = Warp.LaneIdx;
        var xs = x.Cast<Float4>();
        float sum = 0;
        if (bf16 != 0)
        {
            // Two 16-byte weight loads per iteration where the row allows, so that two are in flight at once.
            var ws = w16.Cast<Float4>();
            int i = lane * 8;
            for (; i + 256 < length; i += 512)
            {
                Float4 w = ws[(wAt + i) / 8], v = ws[(wAt + i + 256) / 8];
                sum += Dot8(w, xs[(xAt + i) / 4], xs[((xAt + i) / 4) + 1]) + Dot8(v, xs[(xAt + i + 256) / 4], xs[((xAt + i + 256) / 4) + 1]);
            }

            if (i < length) sum += Dot8(ws[(wAt + i) / 8], xs[(xAt + i) / 4], xs[((xAt + i) / 4) + 1]);
        }
        else
        {
            var ws = w32.Cast<Float4>();
            for (int i = lane * 4; i < length; i += 128)
            {
                Float4 w = ws[(wAt + i) / 4];
                Float4 a = xs[(xAt + i) / 4];
                sum += (a.X * w.X) + (a.Y * w.Y) + (a.Z * w.Z) + (a.W * w.W);
            }
        }

        for (int offset = 16; offset > 0; offset /= 2) sum += Warp.ShuffleXor(sum, offset);
        return sum;
    }

    /// <summary>Eight bf16 weights (one 16-byte load) times eight FP32 values.</summary>
    private static float Dot8(Float4 w, Float4 a, Float4 b)
    {
        uint w0 = Interop.FloatAsInt(w.X), w1 = Interop.FloatAsInt(w.Y), w2 = Interop.FloatAsInt(w.Z), w3 = Interop.FloatAsInt(w.W);
        return (a.X * Bf16.Low(w0)) + (a.Y * Bf16.High(w0)) + (a.Z * Bf16.Low(w1)) + (a.W * Bf16.High(w1))
            + (b.X * Bf16.Low(w2)) + (b.Y * Bf16.High(w2)) + (b.Z * Bf16.Low(w3)) + (b.W * Bf16.High(w3));
    }

    /// <summary>
    /// One warp per ((token, k) pair, row of the expert's width): hidden[pair, row] = silu(gate_e[row] · x_t) · (up_e[row] · x_t)
    /// for the pair's expert e. Every warp has work, whatever the routing: a busy expert's rows are read once per token that
    /// chose it, from L2 after the first.
    /// </summary>
    public static void ExpertGateUpWarp(ArrayView<float> x, ArrayView<int> experts, ArrayView<float> g32, ArrayView<ushort> g16, ArrayView<float> u32,
        ArrayView<ushort> u16, int bf16, ArrayView<float> hidden, int topK, int width, int d, long rows)
    {
        long warp = ((long)Grid.IdxX * WarpsPerGroup) + Warp.WarpIdx;
        if (warp >= rows) return;
        long pair = warp / width, row = warp % width;
        long wAt = (((long)experts[pair] * width) + row) * d;
        long xAt = pair / topK * d;
        float gate = WarpDot(x, xAt, g32, g16, bf16, wAt, d);
        float up = WarpDot(x, xAt, u32, u16, bf16, wAt, d);
        if (Warp.LaneIdx == 0) hidden[warp] = gate / (1f + MathF.Exp(-gate)) * up;
    }

    /// <summary>One warp per (pair, output column c): y[pair, c] = down_e[c] · hidden[pair] for the pair's expert e.</summary>
    public static void ExpertDownWarp(ArrayView<float> hidden, ArrayView<int> experts, ArrayView<float> d32, ArrayView<ushort> d16, int bf16, ArrayView<float> y,
        int width, int d, long rows)
    {
        long warp = ((long)Grid.IdxX * WarpsPerGroup) + Warp.WarpIdx;
        if (warp >= rows) return;
        long pair = warp / d, column = warp % d;
        float value = WarpDot(hidden, pair * width, d32, d16, bf16, (((long)experts[pair] * d) + column) * width, width);
        if (Warp.LaneIdx == 0) y[warp] = value;
    }

    /// <summary>Per item over [tokens, d]: out[t, c] += Σ_k weight[t, k] · y[(t, k), c], the routed experts' gate-weighted sum.</summary>
    public static void CombineExperts(ArrayView<float> y, ArrayView<float> weights, ArrayView<float> output, int topK, int d, long items)
    {
        long i = Grid.GlobalIndex.X;
        if (i >= items) return;
        long token = i / d, column = i % d;
        float sum = 0;
        for (int k = 0; k < topK; k++)
        {
            long pair = (token * topK) + k;
            sum += weights[pair] * y[(pair * d) + column];
        }

        output[i] += sum;
    }

    /// <summary>One warp per (token, head, value column): o[t, h, v] = W_UV[h, v] · ō[t, h] (kv_b_proj's value rows).</summary>
    public static void ApplyValueWarp(ArrayView<float> attended, ArrayView<float> w32, ArrayView<ushort> w16, int bf16, ArrayView<float> output,
        int heads, int nope, int value, int latent, long rows)
    {
        long warp = ((long)Grid.IdxX * WarpsPerGroup) + Warp.WarpIdx;
        if (warp >= rows) return;
        long row = warp / value, v = warp % value;
        long head = row % heads;
        float sum = WarpDot(attended, row * latent, w32, w16, bf16, ((head * (nope + value)) + nope + v) * latent, latent);
        if (Warp.LaneIdx == 0) output[warp] = sum;
    }

    /// <summary>
    /// One warp per (token, head, position): the score against a cached token, (q̃ · c_p + q_pe · k_pe,p) · scale, read from the
    /// page as FP32 or bf16 16 bytes per lane; −∞ past the token's position.
    /// </summary>
    public static void ScoresWarp(ArrayView<float> absorbed, ArrayView<float> q, ArrayView<int> sequences, ArrayView<int> positions, ArrayView<int> pages,
        ArrayView<float> c32, ArrayView<ushort> c16, ArrayView<float> scores, AttentionDims dims, long rows)
    {
        long warp = ((long)Grid.IdxX * WarpsPerGroup) + Warp.WarpIdx;
        if (warp >= rows) return;
        long row = warp / dims.Context;
        int p = (int)(warp % dims.Context);
        long token = row / dims.Heads, head = row % dims.Heads;
        if (p > positions[token])
        {
            if (Warp.LaneIdx == 0) scores[warp] = float.NegativeInfinity;
            return;
        }

        long page = pages[((long)sequences[token] * dims.PagesPerSequence) + (p / PagedLatentCache.PageSize)];
        long cAt = ((page * PagedLatentCache.PageSize) + (p % PagedLatentCache.PageSize)) * dims.Width;
        float latent = WarpDot(absorbed, row * dims.Latent, c32, c16, dims.CacheBf16, cAt, dims.Latent);
        float rope = WarpDot(q, (token * dims.Heads * dims.QueryWidth) + (head * dims.QueryWidth) + dims.RopeOffset, c32, c16, dims.CacheBf16, cAt + dims.Latent, dims.Rope);
        if (Warp.LaneIdx == 0) scores[warp] = (latent + rope) * dims.Scale;
    }
}
