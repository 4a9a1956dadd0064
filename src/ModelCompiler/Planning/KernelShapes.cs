using System;

namespace ModelCompiler.Planning
{
    /// <summary>
    /// The launch geometry of a row kernel that holds its row in registers: <see cref="Vector"/> floats per load,
    /// <see cref="Group"/> threads per row, <see cref="Slots"/> loads per thread (the unrolled loop), the last one guarded when
    /// the row does not fill it.
    /// </summary>
    /// <param name="Width">Values per row.</param>
    public sealed record RowShape(int Width)
    {
        /// <summary>Floats per load: 4 (16 bytes) when the width allows.</summary>
        public int Vector => Width % 4 == 0 ? 4 : 1;

        /// <summary>Loads that cover a row.</summary>
        public int Vectors => Width / Vector;

        /// <summary>Threads per row: about four loads per thread, at least one warp, at most 1024.</summary>
        public int Group
        {
            get
            {
                int group = 32;
                while (group < 1024 && group * 4 < Vectors) group *= 2;
                return group;
            }
        }

        /// <summary>Loads per thread.</summary>
        public int Slots => (Vectors + Group - 1) / Group;

        /// <summary>Warps per row.</summary>
        public int Warps => Group / 32;

        /// <summary>Whether the last slot covers fewer vectors than threads (its loads are guarded).</summary>
        public bool HasTail => Slots * Group != Vectors;

        /// <summary>Lanes that share one quantisation tile of <paramref name="tile"/> values, or 0 when a tile does not map onto aligned lanes of one warp.</summary>
        public int LanesPerTile(int tile) =>
            Vector == 4 && tile % 4 == 0 && tile / 4 <= 32 && IsPowerOfTwo(tile / 4) && Width % tile == 0 ? tile / 4 : 0;

        /// <summary>Whether <paramref name="value"/> is a positive power of two.</summary>
        public static bool IsPowerOfTwo(int value) => value > 0 && (value & (value - 1)) == 0;
    }

    /// <summary>How the router kernel lays a token's experts over one warp: lane l holds experts [l·P, l·P + P).</summary>
    /// <param name="Experts">Routed experts.</param>
    /// <param name="Activated">Experts per token.</param>
    /// <param name="Groups">Expert groups (1 without group-limited routing).</param>
    public sealed record RouterShape(int Experts, int Activated, int Groups)
    {
        /// <summary>The shape of <paramref name="moe"/>'s router.</summary>
        public static RouterShape Of(MoeSpec moe) => new(moe.RoutedExperts, moe.ActivatedExperts, Math.Max(1, moe.ExpertGroups));

        /// <summary>Experts per lane.</summary>
        public int PerLane => (Experts + 31) / 32;

        /// <summary>Lanes that hold one group's experts (0 when a group does not fill whole lanes).</summary>
        public int LanesPerGroup => Groups == 1 ? 32 : (Experts / Groups % PerLane == 0 ? Experts / Groups / PerLane : 0);

        /// <summary>Lanes that hold experts.</summary>
        public int ActiveLanes => (Experts + PerLane - 1) / PerLane;

        /// <summary>Why the warp-per-token router cannot be generated, or null when it can.</summary>
        public KernelLimit? Unsupported =>
            Experts > 32 * 32 ? Moe($"{Experts} routed experts exceed 32 per lane", "RoutedExperts")
            : Activated > 32 ? Moe($"top-{Activated} exceeds the 32 lanes that hold the selection", "ActivatedExperts")
            : Groups > 1 && (LanesPerGroup == 0 || !RowShape.IsPowerOfTwo(LanesPerGroup) || LanesPerGroup > 32)
                ? Moe($"a group of {Experts / Groups} experts does not fill a power-of-two run of lanes holding {PerLane} each", "ExpertGroups")
            : Groups > 32 ? Moe($"{Groups} expert groups exceed the warp", "ExpertGroups")
            : null;

        private static KernelLimit Moe(string reason, string argument) => new(reason, SpecAttributes.Moe, argument);
    }

    /// <summary>
    /// The tensor-core MLA decode kernel's tiling: 16 heads per m-tile, one or two m-tiles per group, four warps per m-tile that
    /// split the score's K = d_c + d_rope dimensions (9 k-steps each for 576) and then the output's d_c columns (128 each for
    /// 512), chunks of 32 cached tokens in shared memory.
    /// </summary>
    /// <param name="Heads">Query heads.</param>
    /// <param name="Latent">d_c.</param>
    /// <param name="Rope">d_rope.</param>
    public sealed record MlaShape(int Heads, int Latent, int Rope)
    {
        /// <summary>Cached tokens per chunk.</summary>
        public const int Chunk = 32;

        /// <summary>
        /// The tile of d_c (and of d_c + d_rope) the decoders read: four warps × 16 columns here, 64-value swizzled blocks in the
        /// warp-group kernel. A latent width off this tile costs the fast kernels (MC2010 warns of it).
        /// </summary>
        public const int LatentTile = 64;

        /// <summary>The shape for <paramref name="attention"/>.</summary>
        public static MlaShape Of(AttentionSpec attention) => new(attention.Heads, attention.KeyValueLoraRank, attention.QkRopeHeadDim);

        /// <summary>16-row m-tiles per group: two when the heads allow.</summary>
        public int MTiles => Heads % 32 == 0 ? 2 : 1;

        /// <summary>Heads per thread group.</summary>
        public int HeadsPerGroup => 16 * MTiles;

        /// <summary>Warps per group.</summary>
        public int Warps => 4 * MTiles;

        /// <summary>Threads per group.</summary>
        public int Threads => 32 * Warps;

        /// <summary>The score's K: d_c + d_rope, one cached token's width (<see cref="AttentionSpec.CacheWidth"/>).</summary>
        public int ScoreDims => Latent + Rope;

        /// <summary>16-deep k-steps of the score each warp does.</summary>
        public int KStepsPerWarp => ScoreDims / 16 / 4;

        /// <summary>Output columns each warp accumulates.</summary>
        public int OutputColumnsPerWarp => Latent / 4;

        /// <summary>32-bit words per cached token in shared memory: 576 bf16 = 288 words plus 4 of padding (no bank conflicts, 16-byte rows).</summary>
        public int RowWords => (ScoreDims / 2) + 4;

        /// <summary>Floats per row of the partial scores (padded).</summary>
        public int PartialStride => Chunk + 4;

        /// <summary>Words per row of the probabilities (padded).</summary>
        public int PWords => (Chunk / 2) + 4;

        /// <summary>Shared bytes of one chunk of cached tokens.</summary>
        public int KeyBytes => Chunk * RowWords * 4;

        /// <summary>Shared bytes of the partial scores.</summary>
        public int PartialBytes => MTiles * 4 * 16 * PartialStride * 4;

        /// <summary>Shared bytes of the probabilities.</summary>
        public int PBytes => MTiles * 16 * PWords * 4;

        /// <summary>Shared bytes of the per-warp row maxima.</summary>
        public int MaxBytes => MTiles * 4 * 16 * 4;

        /// <summary>Dynamic shared memory per group.</summary>
        public int SharedBytes => KeyBytes + PartialBytes + PBytes + MaxBytes;

        /// <summary>
        /// Where the next chunk's loads are issued (they wait in registers until the chunk is staged): before this chunk's
        /// scores with 256 threads (9 loads of 16 bytes each); with 128 threads the 18 loads' registers beside the score
        /// accumulators would push the kernel past 255 registers, so after the scores, overlapping the softmax and p · c.
        /// </summary>
        public bool PrefetchBeforeScores => (Chunk * ScoreDims / 8) / Threads <= 9;

        /// <summary>Why the tensor-core kernel cannot be generated, or null when it can.</summary>
        public KernelLimit? Unsupported =>
            Heads % 16 != 0 ? KernelLimit.Attention($"{Heads} heads are not a multiple of the 16 rows of an mma tile", "Heads")
            : ScoreDims % LatentTile != 0 ? KernelLimit.Attention($"d_c + d_rope = {ScoreDims} is not a multiple of {LatentTile} (four warps × 16-wide k-steps)", "QkRopeHeadDim")
            : Latent % LatentTile != 0 ? KernelLimit.Attention($"d_c = {Latent} is not a multiple of {LatentTile} (four warps × 16 columns)", "KeyValueLoraRank")
            : Rope % 8 != 0 ? KernelLimit.Attention($"d_rope = {Rope} is not a multiple of 8", "QkRopeHeadDim")
            : Threads % (Latent / 8) != 0 || Threads % (Rope / 8) != 0 || (Chunk * Rope / 8) % Threads != 0 || (Chunk * Latent / 8) % Threads != 0
                ? KernelLimit.Attention($"the {Threads} threads do not divide the chunk's {Latent / 8}- and {Rope / 8}-piece rows evenly", "KeyValueLoraRank")
            : null;
    }

    /// <summary>
    /// Hopper's absorbed MLA decoding on warp-group MMA (wgmma, sm_90a): one 256-thread group per (sequence, split, 64
    /// heads); the query tile and two stages of 64-token chunks in shared memory as 128-byte-swizzled blocks of 64 values ×
    /// 64 rows (bulk tensor copies write them, wgmma reads them), p as no-swizzle core matrices (8 rows × 16 bytes), then
    /// the row statistics and three mbarriers.
    /// </summary>
    /// <param name="Heads">Query heads.</param>
    /// <param name="Latent">d_c.</param>
    /// <param name="Rope">d_rope.</param>
    public sealed record WarpGroupMlaShape(int Heads, int Latent, int Rope)
    {
        /// <summary>Heads per group: the M of one wgmma.</summary>
        public const int HeadsPerGroup = 64;

        /// <summary>Tokens per chunk: the N of the score product, the K of the value product.</summary>
        public const int Chunk = 64;

        /// <summary>Threads per group: two warp groups.</summary>
        public const int Threads = 256;

        /// <summary>Columns of ō one wgmma of the value product covers (its N).</summary>
        public const int ColumnBlock = 64;

        /// <summary>sm_90's largest dynamic shared memory per block (227 KB).</summary>
        public const int MaxSharedBytes = 232448;

        /// <summary>The shape for <paramref name="attention"/>.</summary>
        public static WarpGroupMlaShape Of(AttentionSpec attention) => new(attention.Heads, attention.KeyValueLoraRank, attention.QkRopeHeadDim);

        /// <summary>The score's K: d_c + d_rope.</summary>
        public int ScoreDims => Latent + Rope;

        /// <summary>16-deep k-steps of the score.</summary>
        public int KSteps => ScoreDims / 16;

        /// <summary>Bytes of the query tile, and of one stage of a chunk: 64 rows × ScoreDims bf16.</summary>
        public int OperandBytes => 64 * ScoreDims * 2;

        /// <summary>Where chunk stage <paramref name="stage"/> starts in shared memory.</summary>
        public int StageOffset(int stage) => OperandBytes * (1 + stage);

        /// <summary>Where p starts.</summary>
        public int ProbabilityOffset => 3 * OperandBytes;

        /// <summary>Where the row statistics start.</summary>
        public int StatisticsOffset => ProbabilityOffset + (HeadsPerGroup * Chunk * 2);

        /// <summary>Three mbarriers on which bulk tensor copies complete: one per stage, one for the query tile.</summary>
        public int BarrierOffset => StatisticsOffset + (2 * HeadsPerGroup * 4);

        /// <summary>Dynamic shared memory per group.</summary>
        public int SharedBytes => BarrierOffset + 24;

        /// <summary>64-value blocks of a row (one bulk tensor copy of 64 rows each, 8 KB, 128-byte swizzled).</summary>
        public int Blocks => ScoreDims / 64;

        /// <summary>
        /// Column blocks of ō warp group 0 adds into (the first ones): fewer than warp group 1's, as warp group 0 also computes
        /// the scores and the softmax: 3 of 8 for d_c = 512.
        /// </summary>
        public int BlocksOfGroup0 => Latent / ColumnBlock * 3 / 8;

        /// <summary>Column blocks of ō warp group 1 adds into (the rest).</summary>
        public int BlocksOfGroup1 => (Latent / ColumnBlock) - BlocksOfGroup0;

        /// <summary>Why the warp-group kernel cannot be generated, or null when it can.</summary>
        public KernelLimit? Unsupported =>
            Heads % HeadsPerGroup != 0 ? KernelLimit.Attention($"{Heads} heads are not a multiple of the 64 rows of a warp-group MMA", "Heads")
            : Latent % ColumnBlock != 0 || Latent / ColumnBlock * 3 / 8 == 0
                ? KernelLimit.Attention($"d_c = {Latent} does not split into 64-column blocks for both warp groups", "KeyValueLoraRank")
            : Rope % 64 != 0 ? KernelLimit.Attention($"d_rope = {Rope} is not a multiple of 64 (the 128-byte swizzled blocks the tensor cores read)", "QkRopeHeadDim")
            : SharedBytes > MaxSharedBytes
                ? KernelLimit.Attention($"the query tile, two chunk stages and p need {SharedBytes} bytes of shared memory, more than sm_90's {MaxSharedBytes}", "KeyValueLoraRank")
            : null;
    }

    /// <summary>
    /// Hopper's FP8 GEMM with DeepSeek-V3's fine-grained scaling (wgmma e4m3, sm_90a): one 256-thread group per 128 × 128
    /// output tile, each warp group 64 of its rows; the k axis in blocks of 128 (one activation tile and one weight block),
    /// each staged by two bulk tensor copies (128 rows × 128 bytes of A and of B, 128-byte swizzled) into one of four stages.
    /// </summary>
    /// <param name="Precision">The precision policy whose tiles and promotion it follows.</param>
    public sealed record Fp8GemmShape(PrecisionSpec Precision)
    {
        /// <summary>Output tile edge, and the k-block.</summary>
        public const int Tile = 128;

        /// <summary>Threads per group: two warp groups.</summary>
        public const int Threads = 256;

        /// <summary>Staging buffers of the k loop.</summary>
        public const int Stages = 4;

        /// <summary>One stage: the 128 × 128 codes of A, then those of B.</summary>
        public const int StageBytes = 2 * Tile * Tile;

        /// <summary>k-blocks whose weight scales the kernel caches in shared memory: k up to 131072.</summary>
        public const int MaxBlocks = 1024;

        /// <summary>Where the mbarriers (one per stage) start: after the stages and the weight scales of the tile's column block.</summary>
        public const int BarrierOffset = (Stages * StageBytes) + (4 * MaxBlocks);

        /// <summary>Where the release counters (one per stage: how many warp groups are done with it) start.</summary>
        public const int CounterOffset = BarrierOffset + (8 * Stages);

        /// <summary>Dynamic shared memory per group.</summary>
        public const int SharedBytes = CounterOffset + (4 * Stages);

        /// <summary>wgmma k-steps (32 deep for e4m3) between promotions of the product into the FP32 sum.</summary>
        public int StepsPerPromotion => Precision.PromotionInterval / 32;

        /// <summary>Why the FP8 GEMM cannot be generated, or null when it can.</summary>
        public KernelLimit? Unsupported =>
            Precision.Compute != NumericFormat.Fp8E4M3 ? Policy($"the declaration computes in {Precision.Compute}, not FP8 E4M3", "Compute")
            : Precision.ActivationTile != Tile || Precision.WeightBlock != Tile
                ? Policy($"its k-blocks are {Tile} wide, so ActivationTile and WeightBlock must be {Tile} (they are {Precision.ActivationTile} and {Precision.WeightBlock})",
                    Precision.ActivationTile != Tile ? "ActivationTile" : "WeightBlock")
            : Tile % Precision.PromotionInterval != 0 ? Policy($"PromotionInterval {Precision.PromotionInterval} does not divide the {Tile}-wide k-block", "PromotionInterval")
            : null;

        private static KernelLimit Policy(string reason, string argument) => new(reason, SpecAttributes.Precision, argument);
    }

    /// <summary>Why a kernel cannot be generated for a declaration, and the attribute argument that decides it.</summary>
    /// <param name="Reason">Why, at the declaration's widths.</param>
    /// <param name="Attribute">The attribute, e.g. <c>MultiHeadLatentAttention</c>.</param>
    /// <param name="Argument">Its argument, e.g. <c>Heads</c>.</param>
    public sealed record KernelLimit(string Reason, string Attribute, string Argument)
    {
        /// <summary>A limit set by an argument of [MultiHeadLatentAttention].</summary>
        public static KernelLimit Attention(string reason, string argument) => new(reason, SpecAttributes.Attention, argument);
    }
}
