using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Gpu;

namespace ModelCompiler.Inference;

/// <summary>The widths the attention kernels share, passed as one argument (public: the CUDA launcher ILGPU emits must see it).</summary>
/// <param name="Heads">Query heads.</param>
/// <param name="Latent">d_c.</param>
/// <param name="Rope">d_rope.</param>
/// <param name="QueryWidth">Per-head query width, nope + rope.</param>
/// <param name="PagesPerSequence">Page-table entries per slot.</param>
/// <param name="Context">Positions scored per row: the step's last position + 1.</param>
/// <param name="CacheBf16">1 when the cache holds bf16.</param>
/// <param name="Scale">The softmax scale.</param>
public readonly record struct AttentionDims(int Heads, int Latent, int Rope, int QueryWidth, int PagesPerSequence, int Context, int CacheBf16, float Scale)
{
    /// <summary>Values per cached token.</summary>
    public int Width => Latent + Rope;

    /// <summary>Where the rotary part of a head's query starts.</summary>
    public int RopeOffset => QueryWidth - Rope;
}

/// <summary>
/// The inference runtime's general kernels: every width is an argument, so one compiled kernel serves any declaration; they
/// run on CUDA, OpenCL and ILGPU's CPU accelerator alike (reductions through shared memory, no warp shuffles, no inline PTX).
/// Activations are FP32; a weight is read from an FP32 view or, when <c>bf16</c> is 1, from a bf16 view (the other view is
/// empty). Each is launched in groups of <see cref="Threads"/>; "per item" kernels take one thread per output element.
/// </summary>
internal static partial class EngineKernels
{
    /// <summary>Threads per group.</summary>
    public const int Threads = 256;

    private static float Weight(ArrayView<float> w32, ArrayView<ushort> w16, int bf16, long index) => bf16 != 0 ? Bf16.ToFloat(w16[index]) : w32[index];

    /// <summary>The sum of <paramref name="value"/> over the group, returned to every thread.</summary>
    private static float GroupSum(float value)
    {
        var shared = SharedMemory.Allocate<float>(Threads);
        int thread = Group.IdxX;
        shared[thread] = value;
        Group.Barrier();
        for (int step = Threads / 2; step > 0; step >>= 1)
        {
            if (thread < step) shared[thread] += shared[thread + step];
            Group.Barrier();
        }

        float sum = shared[0];
        Group.Barrier();
        return sum;
    }

    /// <summary>The maximum of <paramref name="value"/> over the group, returned to every thread.</summary>
    private static float GroupMax(float value)
    {
        var shared = SharedMemory.Allocate<float>(Threads);
        int thread = Group.IdxX;
        shared[thread] = value;
        Group.Barrier();
        for (int step = Threads / 2; step > 0; step >>= 1)
        {
            if (thread < step) shared[thread] = MathF.Max(shared[thread], shared[thread + step]);
            Group.Barrier();
        }

        float max = shared[0];
        Group.Barrier();
        return max;
    }

    /// <summary>Per item: out[t, c] = table[ids[t], c] (the token embedding).</summary>
    public static void Embed(ArrayView<int> ids, ArrayView<float> t32, ArrayView<ushort> t16, int bf16, ArrayView<float> output, int width, long items)
    {
        long i = Grid.GlobalIndex.X;
        if (i >= items) return;
        long token = i / width, column = i % width;
        output[i] = Weight(t32, t16, bf16, ((long)ids[token] * width) + column);
    }

    /// <summary>One group per row: y = x / √(mean(x²) + ε) · w over the first <paramref name="width"/> values of rows <paramref name="xStride"/> and <paramref name="yStride"/> apart.</summary>
    public static void RmsNorm(ArrayView<float> x, ArrayView<float> weight, ArrayView<float> y, int width, int xStride, int yStride, float epsilon)
    {
        long row = Grid.IdxX;
        long from = row * xStride, to = row * yStride;
        float squares = 0;
        for (int c = Group.IdxX; c < width; c += Threads) squares += x[from + c] * x[from + c];
        float scale = 1f / MathF.Sqrt((GroupSum(squares) / width) + epsilon);
        for (int c = Group.IdxX; c < width; c += Threads) y[to + c] = x[from + c] * scale * weight[c];
    }

    /// <summary>Per item over [rows, width]: out[r] = x[index[r]] (the rows whose logits a step returns).</summary>
    public static void Gather(ArrayView<float> x, ArrayView<int> index, ArrayView<float> output, int width, long items)
    {
        long i = Grid.GlobalIndex.X;
        if (i >= items) return;
        output[i] = x[((long)index[i / width] * width) + (i % width)];
    }

    /// <summary>
    /// One group per output element: y[m, n] = Σ_k x[m, k] · w[n, k] (a linear layer's weight layout), for the rows of x at
    /// <paramref name="xStride"/> and of y at <paramref name="yStride"/>; the general GEMM where cuBLAS does not run.
    /// </summary>
    public static void Linear(ArrayView<float> x, ArrayView<float> w32, ArrayView<ushort> w16, int bf16, ArrayView<float> y, int n, int k, int xStride, int yStride)
    {
        long item = Grid.IdxX;
        long m = item / n, column = item % n;
        float sum = 0;
        for (int i = Group.IdxX; i < k; i += Threads) sum += x[(m * xStride) + i] * Weight(w32, w16, bf16, (column * k) + i);
        sum = GroupSum(sum);
        if (Group.IdxX == 0) y[(m * yStride) + column] = sum;
    }

    /// <summary>Per item: x[i] += y[i].</summary>
    public static void Add(ArrayView<float> x, ArrayView<float> y, long items)
    {
        long i = Grid.GlobalIndex.X;
        if (i < items) x[i] += y[i];
    }

    /// <summary>Per item: bf16 bits of x (round to nearest even), the input cuBLAS's bf16 GEMM reads.</summary>
    public static void ToBf16(ArrayView<float> x, ArrayView<ushort> y, long items)
    {
        long i = Grid.GlobalIndex.X;
        if (i < items) y[i] = Bf16.FromFloat(x[i]);
    }

    /// <summary>Per item: out = silu(gate) · up (SwiGLU).</summary>
    public static void SiluMul(ArrayView<float> gate, ArrayView<float> up, ArrayView<float> output, long items)
    {
        long i = Grid.GlobalIndex.X;
        if (i >= items) return;
        float g = gate[i];
        output[i] = g / (1f + MathF.Exp(-g)) * up[i];
    }

    /// <summary>
    /// Per item over [tokens, heads, pairs]: interleaved RoPE in place on x's rotary slice (each head's channels
    /// [offset, offset + 2·pairs) of a row of <paramref name="rowWidth"/> per head, pair j = channels 2j, 2j+1), at each token's position, from
    /// cos/sin tables [positions, pairs].
    /// </summary>
    public static void Rope(ArrayView<float> x, ArrayView<int> positions, ArrayView<float> cos, ArrayView<float> sin, int heads, int rowWidth, int offset, int pairs, long items)
    {
        long i = Grid.GlobalIndex.X;
        if (i >= items) return;
        long token = i / ((long)heads * pairs);
        long rest = i % ((long)heads * pairs);
        long head = rest / pairs, pair = rest % pairs;
        long at = (token * heads * rowWidth) + (head * rowWidth) + offset + (2 * pair);
        long table = ((long)positions[token] * pairs) + pair;
        float c = cos[table], s = sin[table], re = x[at], im = x[at + 1];
        x[at] = (re * c) - (im * s);
        x[at + 1] = (re * s) + (im * c);
    }

    /// <summary>
    /// Per item over [tokens, width]: writes each token's latent (already normalised) and rotary key into its sequence's
    /// page of the cache: cache[page(seq, pos)][pos mod page size] = [latent | key], as FP32 or bf16.
    /// </summary>
    public static void CacheWrite(ArrayView<float> kv, ArrayView<int> sequences, ArrayView<int> positions, ArrayView<int> pages, ArrayView<float> c32, ArrayView<ushort> c16,
        AttentionDims dims, long items)
    {
        long i = Grid.GlobalIndex.X;
        if (i >= items) return;
        int width = dims.Width;
        long token = i / width, column = i % width;
        int position = positions[token];
        long page = pages[((long)sequences[token] * dims.PagesPerSequence) + (position / PagedLatentCache.PageSize)];
        long at = (((page * PagedLatentCache.PageSize) + (position % PagedLatentCache.PageSize)) * width) + column;
        float value = kv[i];
        if (dims.CacheBf16 != 0) c16[at] = Bf16.FromFloat(value);
        else c32[at] = value;
    }

    /// <summary>
    /// Per item over [tokens, heads, latent]: the absorbed query q̃[t, h, j] = Σ_i W_UK[h, i, j] · q_nope[t, h, i], where W_UK
    /// is rows [h·(nope+v), h·(nope+v)+nope) of kv_b_proj's weight [heads·(nope+v), latent].
    /// </summary>
    public static void AbsorbQuery(ArrayView<float> q, ArrayView<float> w32, ArrayView<ushort> w16, int bf16, ArrayView<float> absorbed,
        int heads, int nope, int queryWidth, int value, int latent, long items)
    {
        long i = Grid.GlobalIndex.X;
        if (i >= items) return;
        long token = i / ((long)heads * latent);
        long rest = i % ((long)heads * latent);
        long head = rest / latent, j = rest % latent;
        long qAt = (token * heads * queryWidth) + (head * queryWidth);
        long wAt = head * (nope + value) * (long)latent;
        float sum = 0;
        for (int d = 0; d < nope; d++) sum += q[qAt + d] * Weight(w32, w16, bf16, wAt + ((long)d * latent) + j);
        absorbed[i] = sum;
    }

    /// <summary>
    /// Per item over [tokens, heads, context]: the scaled score of token t's head h against cached position p of its
    /// sequence, (q̃ · c_p + q_pe · k_pe,p) · scale, for p ≤ the token's position; −∞ beyond it.
    /// </summary>
    public static void Scores(ArrayView<float> absorbed, ArrayView<float> q, ArrayView<int> sequences, ArrayView<int> positions, ArrayView<int> pages,
        ArrayView<float> c32, ArrayView<ushort> c16, ArrayView<float> scores, AttentionDims dims, long items)
    {
        long i = Grid.GlobalIndex.X;
        if (i >= items) return;
        long row = i / dims.Context;
        int p = (int)(i % dims.Context);
        long token = row / dims.Heads, head = row % dims.Heads;
        if (p > positions[token])
        {
            scores[i] = float.NegativeInfinity;
            return;
        }

        long page = pages[((long)sequences[token] * dims.PagesPerSequence) + (p / PagedLatentCache.PageSize)];
        long cAt = ((page * PagedLatentCache.PageSize) + (p % PagedLatentCache.PageSize)) * dims.Width;
        long aAt = row * dims.Latent;
        long qAt = (token * dims.Heads * dims.QueryWidth) + (head * dims.QueryWidth) + dims.RopeOffset;
        float sum = 0;
        for (int j = 0; j < dims.Latent; j++) sum += absorbed[aAt + j] * (dims.CacheBf16 != 0 ? Bf16.ToFloat(c16[cAt + j]) : c32[cAt + j]);
        for (int j = 0; j < dims.Rope; j++)
        {
            long at = cAt + dims.Latent + j;
            sum += q[qAt + j] * (dims.CacheBf16 != 0 ? Bf16.ToFloat(c16[at]) : c32[at]);
        }

        scores[i] = sum * dims.Scale;
    }

    /// <summary>One group per row of <paramref name="context"/> scores: softmax in place (−∞ scores get 0).</summary>
    public static void Softmax(ArrayView<float> scores, int context)
    {
        long start = Grid.IdxX * (long)context;
        float max = float.NegativeInfinity;
        for (int p = Group.IdxX; p < context; p += Threads) max = MathF.Max(max, scores[start + p]);
        max = GroupMax(max);
        float sum = 0;
        for (int p = Group.IdxX; p < context; p += Threads)
        {
            float e = MathF.Exp(scores[start + p] - max);
            scores[start + p] = e;
            sum += e;
        }

        sum = GroupSum(sum);
        for (int p = Group.IdxX; p < context; p += Threads) scores[start + p] /= sum;
    }

    /// <summary>Per item over [tokens, heads, latent]: ō[t, h, j] = Σ_p P[t, h, p] · c_p[j] over the token's positions.</summary>
    public static void AttendLatent(ArrayView<float> probabilities, ArrayView<int> sequences, ArrayView<int> positions, ArrayView<int> pages, ArrayView<float> c32,
        ArrayView<ushort> c16, ArrayView<float> output, AttentionDims dims, long items)
    {
        long i = Grid.GlobalIndex.X;
        if (i >= items) return;
        long row = i / dims.Latent, j = i % dims.Latent;
        long token = row / dims.Heads;
        int position = positions[token];
        long pageRow = (long)sequences[token] * dims.PagesPerSequence;
        // Four positions per iteration: their loads are issued together instead of one waiting on the last.
        float sum0 = 0, sum1 = 0, sum2 = 0, sum3 = 0;
        long probabilityRow = row * dims.Context;
        int p = 0;
        for (; p + 3 <= position; p += 4)
        {
            sum0 += probabilities[probabilityRow + p] * Cached(c32, c16, dims, CacheAt(pages, pageRow, p, dims) + j);
            sum1 += probabilities[probabilityRow + p + 1] * Cached(c32, c16, dims, CacheAt(pages, pageRow, p + 1, dims) + j);
            sum2 += probabilities[probabilityRow + p + 2] * Cached(c32, c16, dims, CacheAt(pages, pageRow, p + 2, dims) + j);
            sum3 += probabilities[probabilityRow + p + 3] * Cached(c32, c16, dims, CacheAt(pages, pageRow, p + 3, dims) + j);
        }

        for (; p <= position; p++) sum0 += probabilities[probabilityRow + p] * Cached(c32, c16, dims, CacheAt(pages, pageRow, p, dims) + j);
        output[i] = (sum0 + sum1) + (sum2 + sum3);
    }

    /// <summary>Where cached position <paramref name="p"/> of the slot whose page-table row starts at <paramref name="pageRow"/> begins.</summary>
    private static long CacheAt(ArrayView<int> pages, long pageRow, int p, AttentionDims dims) =>
        (((long)pages[pageRow + (p / PagedLatentCache.PageSize)] * PagedLatentCache.PageSize) + (p % PagedLatentCache.PageSize)) * dims.Width;

    private static float Cached(ArrayView<float> c32, ArrayView<ushort> c16, AttentionDims dims, long at) => dims.CacheBf16 != 0 ? Bf16.ToFloat(c16[at]) : c32[at];

    /// <summary>
    /// Per item over [tokens, heads, value]: o[t, h, v] = Σ_j W_UV[h, v, j] · ō[t, h, j], W_UV being rows
    /// [h·(nope+v)+nope, (h+1)·(nope+v)) of kv_b_proj's weight.
    /// </summary>
    public static void ApplyValue(ArrayView<float> attended, ArrayView<float> w32, ArrayView<ushort> w16, int bf16, ArrayView<float> output,
        int heads, int nope, int value, int latent, long items)
    {
        long i = Grid.GlobalIndex.X;
        if (i >= items) return;
        long row = i / value, v = i % value;
        long head = row % heads;
        long wAt = ((head * (nope + value)) + nope + v) * latent;
        float sum = 0;
        for (int j = 0; j < latent; j++) sum += Weight(w32, w16, bf16, wAt + j) * attended[(row * latent) + j];
        output[i] = sum;
    }

    /// <summary>
    /// Per token: DeepSeekMoE's router after its GEMM, as <c>MoeGate</c> computes it: scores = sigmoid (or softmax) of the
    /// logits; selection = scores + bias (when <paramref name="hasBias"/>); with groups, each group scored by the sum of its
    /// top two selections (with a bias) or its best (without), the best <paramref name="keptGroups"/> kept; top-k of the
    /// kept selections; weights = their unbiased scores, renormalised when asked, times the scaling factor.
    /// <paramref name="scratch"/> holds [tokens, experts] selections.
    /// </summary>
    public static void Route(ArrayView<float> logits, ArrayView<float> bias, int hasBias, ArrayView<float> scratch, ArrayView<int> experts, ArrayView<float> weights,
        int expertCount, int topK, int groups, int keptGroups, int sigmoid, int normalize, float scaling, long tokens)
    {
        long token = Grid.GlobalIndex.X;
        if (token >= tokens) return;
        long at = token * expertCount;
        float max = float.NegativeInfinity, total = 0;
        if (sigmoid == 0)
        {
            for (int e = 0; e < expertCount; e++) max = MathF.Max(max, logits[at + e]);
            for (int e = 0; e < expertCount; e++) total += MathF.Exp(logits[at + e] - max);
        }

        for (int e = 0; e < expertCount; e++)
        {
            float score = sigmoid != 0 ? 1f / (1f + MathF.Exp(-logits[at + e])) : MathF.Exp(logits[at + e] - max) / total;
            logits[at + e] = score; // the unbiased scores, kept for the weights
            scratch[at + e] = hasBias != 0 ? score + bias[e] : score;
        }

        if (groups > 1)
        {
            int perGroup = expertCount / groups;
            // Drop the worst groups one at a time until keptGroups remain.
            for (int dropped = 0; dropped < groups - keptGroups; dropped++)
            {
                int worst = -1;
                float worstScore = float.PositiveInfinity;
                for (int g = 0; g < groups; g++)
                {
                    float best = float.NegativeInfinity, second = float.NegativeInfinity;
                    for (int e = g * perGroup; e < (g + 1) * perGroup; e++)
                    {
                        float s = scratch[at + e];
                        if (s > best)
                        {
                            second = best;
                            best = s;
                        }
                        else if (s > second)
                        {
                            second = s;
                        }
                    }

                    if (best == float.NegativeInfinity) continue; // already dropped
                    float groupScore = hasBias != 0 ? best + second : best;
                    if (groupScore < worstScore)
                    {
                        worstScore = groupScore;
                        worst = g;
                    }
                }

                for (int e = worst * perGroup; e < (worst + 1) * perGroup; e++) scratch[at + e] = float.NegativeInfinity;
            }
        }

        float sum = 0;
        for (int k = 0; k < topK; k++)
        {
            int best = 0;
            float bestScore = float.NegativeInfinity;
            for (int e = 0; e < expertCount; e++)
            {
                if (scratch[at + e] > bestScore)
                {
                    bestScore = scratch[at + e];
                    best = e;
                }
            }

            scratch[at + best] = float.NegativeInfinity;
            experts[(token * topK) + k] = best;
            weights[(token * topK) + k] = logits[at + best];
            sum += logits[at + best];
        }

        for (int k = 0; k < topK; k++)
        {
            float w = weights[(token * topK) + k];
            weights[(token * topK) + k] = (normalize != 0 ? w / sum : w) * scaling;
        }
    }

    /// <summary>
    /// One group per (token, k, column): the k-th routed expert's gate and up projections of the token, then
    /// silu(gate) · up → hidden[t, k, column]. The experts' weights are stacked [experts, width, d].
    /// </summary>
    public static void ExpertGateUp(ArrayView<float> x, ArrayView<int> experts, ArrayView<float> g32, ArrayView<ushort> g16, ArrayView<float> u32, ArrayView<ushort> u16,
        int bf16, ArrayView<float> hidden, int topK, int width, int d)
    {
        long item = Grid.IdxX;
        long pair = item / width, column = item % width;
        long token = pair / topK;
        long expert = experts[pair];
        long row = ((expert * width) + column) * d;
        float gate = 0, up = 0;
        for (int i = Group.IdxX; i < d; i += Threads)
        {
            float value = x[(token * d) + i];
            gate += value * Weight(g32, g16, bf16, row + i);
            up += value * Weight(u32, u16, bf16, row + i);
        }

        gate = GroupSum(gate);
        up = GroupSum(up);
        if (Group.IdxX == 0) hidden[item] = gate / (1f + MathF.Exp(-gate)) * up;
    }

    /// <summary>
    /// One group per (token, column of d): out[t, c] += Σ_k weight[t, k] · Σ_j down_e[c, j] · hidden[t, k, j], the routed
    /// experts' down projections combined with their gate weights (added into the shared experts' output).
    /// </summary>
    public static void ExpertDownCombine(ArrayView<float> hidden, ArrayView<int> experts, ArrayView<float> weights, ArrayView<float> d32, ArrayView<ushort> d16,
        int bf16, ArrayView<float> output, int topK, int width, int d)
    {
        long item = Grid.IdxX;
        long token = item / d, column = item % d;
        float total = 0;
        for (int k = 0; k < topK; k++)
        {
            long pair = (token * topK) + k;
            long row = (((long)experts[pair] * d) + column) * width;
            float sum = 0;
            for (int j = Group.IdxX; j < width; j += Threads) sum += hidden[(pair * width) + j] * Weight(d32, d16, bf16, row + j);
            total += weights[pair] * GroupSum(sum);
        }

        if (Group.IdxX == 0) output[item] += total;
    }

    /// <summary>One group per row: the index of the largest logit (the first on ties), for greedy decoding.</summary>
    public static void Argmax(ArrayView<float> logits, ArrayView<int> chosen, int vocabulary)
    {
        long row = Grid.IdxX;
        long start = row * vocabulary;
        float best = float.NegativeInfinity;
        int index = int.MaxValue;
        for (int v = Group.IdxX; v < vocabulary; v += Threads)
        {
            float value = logits[start + v];
            if (value > best)
            {
                best = value;
                index = v;
            }
        }

        float max = GroupMax(best);
        var shared = SharedMemory.Allocate<int>(Threads);
        shared[Group.IdxX] = best == max ? index : int.MaxValue;
        Group.Barrier();
        for (int step = Threads / 2; step > 0; step >>= 1)
        {
            if (Group.IdxX < step) shared[Group.IdxX] = Math.Min(shared[Group.IdxX], shared[Group.IdxX + step]);
            Group.Barrier();
        }

        if (Group.IdxX == 0) chosen[row] = shared[0];
    }

    /// <summary>
    /// One group per row: samples a token with temperature and top-p on the device. The probabilities p = softmax(logits / T);
    /// the nucleus is the set of tokens whose p ≥ a threshold, found by bisection so that it is the smallest set holding at
    /// least top-p of the mass (no sort); a token is drawn from it by the Gumbel-max trick with a counter-based hash of
    /// (seed, row, step, token) as its uniform, so a seed gives the same tokens on every backend.
    /// </summary>
    public static void Sample(ArrayView<float> logits, ArrayView<int> chosen, ArrayView<int> seeds, int vocabulary, float temperature, float topP, int step)
    {
        long row = Grid.IdxX;
        long start = row * vocabulary;
        float max = float.NegativeInfinity;
        for (int v = Group.IdxX; v < vocabulary; v += Threads) max = MathF.Max(max, logits[start + v]);
        max = GroupMax(max);
        float sum = 0;
        for (int v = Group.IdxX; v < vocabulary; v += Threads) sum += MathF.Exp((logits[start + v] - max) / temperature);
        sum = GroupSum(sum);

        // Bisection on the probability threshold: mass(t) = Σ_{p ≥ t} p falls as t rises; keep the largest t with mass ≥ top-p.
        float low = 0, high = 1;
        for (int iteration = 0; iteration < 32 && topP < 1; iteration++)
        {
            float middle = 0.5f * (low + high);
            float mass = 0;
            for (int v = Group.IdxX; v < vocabulary; v += Threads)
            {
                float p = MathF.Exp((logits[start + v] - max) / temperature) / sum;
                if (p >= middle) mass += p;
            }

            if (GroupSum(mass) >= topP) low = middle;
            else high = middle;
        }

        float best = float.NegativeInfinity;
        int index = int.MaxValue;
        uint seed = (uint)seeds[row];
        for (int v = Group.IdxX; v < vocabulary; v += Threads)
        {
            float p = MathF.Exp((logits[start + v] - max) / temperature) / sum;
            if (p < low || p <= 0) continue;
            float uniform = (Hash(seed, (uint)step, (uint)v) + 0.5f) / 4294967296f;
            float key = MathF.Log(p) - MathF.Log(-MathF.Log(uniform)); // log p + Gumbel noise
            if (key > best)
            {
                best = key;
                index = v;
            }
        }

        float top = GroupMax(best);
        var shared = SharedMemory.Allocate<int>(Threads);
        shared[Group.IdxX] = best == top ? index : int.MaxValue;
        Group.Barrier();
        for (int stride = Threads / 2; stride > 0; stride >>= 1)
        {
            if (Group.IdxX < stride) shared[Group.IdxX] = Math.Min(shared[Group.IdxX], shared[Group.IdxX + stride]);
            Group.Barrier();
        }

        if (Group.IdxX == 0) chosen[row] = shared[0];
    }

    /// <summary>
    /// Implicitly grouped, per element: weight[offset + i] = center + scale·√3·(2u − 1), u uniform in [0, 1) from a hash of
    /// (key, element): variance scale², drawn on the device (random benchmark weights).
    /// </summary>
    public static void FillRandom(Index1D index, ArrayView<float> w32, ArrayView<ushort> w16, int bf16, long offset, uint key, float scale, float center)
    {
        long at = offset + index.X;
        uint bits = Hash(key, (uint)(at >> 32), (uint)at);
        float value = center + (scale * 1.7320508f * ((2f * (bits / 4294967296f)) - 1f));
        if (bf16 != 0) w16[at] = Bf16.FromFloat(value);
        else w32[at] = value;
    }

    /// <summary>A 32-bit hash of three words (a few rounds of a multiply-xorshift mix): the sampler's random numbers.</summary>
    private static uint Hash(uint a, uint b, uint c)
    {
        uint h = (a * 0x9E3779B1u) ^ (b * 0x85EBCA77u) ^ (c * 0xC2B2AE3Du);
        h ^= h >> 16;
        h *= 0x7FEB352Du;
        h ^= h >> 15;
        h *= 0x846CA68Bu;
        h ^= h >> 16;
        return h;
    }
}
