using System;
using ModelCompiler.Planning;

namespace ModelCompiler.Generators.Emit
{
    /// <summary>
    /// The launch geometry of a row kernel that holds its row in registers: <see cref="Vector"/> floats per load, <see cref="Group"/>
    /// threads per row, <see cref="Slots"/> loads per thread (the unrolled loop), the last one guarded when the row does not fill it.
    /// </summary>
    internal readonly struct RowShape
    {
        public RowShape(int width)
        {
            Width = width;
            Vector = width % 4 == 0 ? 4 : 1;
            int vectors = width / Vector;
            int group = 32;
            while (group < 1024 && group * 4 < vectors) group *= 2; // about four loads per thread, at least one warp
            Group = group;
            Slots = (vectors + group - 1) / group;
        }

        public int Width { get; }

        public int Vector { get; }

        public int Group { get; }

        public int Slots { get; }

        public int Vectors => Width / Vector;

        public int Warps => Group / 32;

        /// <summary>Whether the last slot covers fewer vectors than threads (its loads are guarded).</summary>
        public bool HasTail => Slots * Group != Vectors;

        /// <summary>Lanes that share one quantisation tile of <paramref name="tile"/> values, or 0 when a tile does not map onto aligned lanes of one warp.</summary>
        public int LanesPerTile(int tile) =>
            Vector == 4 && tile % 4 == 0 && tile / 4 <= 32 && IsPowerOfTwo(tile / 4) && Width % tile == 0 ? tile / 4 : 0;

        public static bool IsPowerOfTwo(int value) => value > 0 && (value & (value - 1)) == 0;
    }

    /// <summary>How the router kernel lays a token's experts over one warp: lane l holds experts [l·P, l·P + P).</summary>
    internal readonly struct RouterShape
    {
        public RouterShape(MoeSpec moe)
        {
            Experts = moe.RoutedExperts;
            PerLane = (Experts + 31) / 32;
            Groups = Math.Max(1, moe.ExpertGroups);
            int perGroup = Experts / Groups;
            LanesPerGroup = Groups == 1 ? 32 : (perGroup % PerLane == 0 ? perGroup / PerLane : 0);
            ActiveLanes = (Experts + PerLane - 1) / PerLane;
        }

        public int Experts { get; }

        public int PerLane { get; }

        public int Groups { get; }

        public int LanesPerGroup { get; }

        public int ActiveLanes { get; }

        /// <summary>Why the warp-per-token router cannot be generated, or null when it can.</summary>
        public string? Unsupported(MoeSpec moe) =>
            Experts > 32 * 32 ? $"{Experts} routed experts exceed 32 per lane"
            : moe.ActivatedExperts > 32 ? $"top-{moe.ActivatedExperts} exceeds the 32 lanes that hold the selection"
            : Groups > 1 && (LanesPerGroup == 0 || !RowShape.IsPowerOfTwo(LanesPerGroup) || LanesPerGroup > 32) ? $"a group of {Experts / Groups} experts does not fill a power-of-two run of lanes holding {PerLane} each"
            : Groups > 32 ? $"{Groups} expert groups exceed the warp"
            : null;
    }

    /// <summary>
    /// The tensor-core MLA decode kernel's tiling: 16 heads per m-tile, one or two m-tiles per group, four warps per m-tile that
    /// split the score's K = d_c + d_rope dimensions (9 k-steps each for 576) and then the output's d_c columns (128 each for 512),
    /// chunks of 32 cached tokens in shared memory.
    /// </summary>
    internal readonly struct MlaShape
    {
        public const int Chunk = 32;

        public MlaShape(AttentionSpec attention)
        {
            Heads = attention.Heads;
            Latent = attention.KeyValueLoraRank;
            Rope = attention.QkRopeHeadDim;
            MTiles = Heads % 32 == 0 ? 2 : 1;
        }

        public int Heads { get; }

        public int Latent { get; }

        public int Rope { get; }

        public int MTiles { get; }

        public int HeadsPerGroup => 16 * MTiles;

        public int Warps => 4 * MTiles;

        public int Threads => 32 * Warps;

        public int ScoreDims => Latent + Rope;

        public int KStepsPerWarp => ScoreDims / 16 / 4;

        public int OutputColumnsPerWarp => Latent / 4;

        /// <summary>32-bit words per cached token in shared memory: 576 bf16 = 288 words plus 4 of padding (no bank conflicts, 16-byte rows).</summary>
        public int RowWords => (ScoreDims / 2) + 4;

        public int PartialStride => Chunk + 4;

        public int PWords => (Chunk / 2) + 4;

        public int KeyBytes => Chunk * RowWords * 4;

        public int PartialBytes => MTiles * 4 * 16 * PartialStride * 4;

        public int PBytes => MTiles * 16 * PWords * 4;

        public int MaxBytes => MTiles * 4 * 16 * 4;

        public int SharedBytes => KeyBytes + PartialBytes + PBytes + MaxBytes;

        /// <summary>
        /// Where the next chunk's loads are issued (they wait in registers until the chunk is staged): before this chunk's
        /// scores with 256 threads (9 loads of 16 bytes each); with 128 threads the 18 loads' registers beside the score
        /// accumulators would push the kernel past 255 registers, so after the scores, overlapping the softmax and p · c.
        /// </summary>
        public bool PrefetchBeforeScores => (Chunk * ScoreDims / 8) / Threads <= 9;

        /// <summary>Why the tensor-core kernel cannot be generated, or null when it can.</summary>
        public string? Unsupported =>
            Heads % 16 != 0 ? $"{Heads} heads are not a multiple of the 16 rows of an mma tile"
            : ScoreDims % 64 != 0 ? $"d_c + d_rope = {ScoreDims} is not a multiple of 64 (four warps × 16-wide k-steps)"
            : Latent % 64 != 0 ? $"d_c = {Latent} is not a multiple of 64 (four warps × 16 columns)"
            : Rope % 8 != 0 ? $"d_rope = {Rope} is not a multiple of 8"
            : Threads % (Latent / 8) != 0 || Threads % (Rope / 8) != 0 || (Chunk * Rope / 8) % Threads != 0 || (Chunk * Latent / 8) % Threads != 0
                ? $"the {Threads} threads do not divide the chunk's {Latent / 8}- and {Rope / 8}-piece rows evenly"
            : null;
    }

    /// <summary>
    /// Hopper's absorbed MLA decoding on warp-group MMA (wgmma, sm_90a): one 256-thread group per (sequence, split, 64
    /// heads); the query tile and two stages of 64-token chunks in shared memory as 128-byte-swizzled blocks of 64 values ×
    /// 64 rows (bulk tensor copies write them, wgmma reads them), p as no-swizzle core matrices (8 rows × 16 bytes), then
    /// the row statistics and three mbarriers.
    /// </summary>
    internal readonly struct WarpGroupMlaShape
    {
        /// <summary>Heads per group: the M of one wgmma.</summary>
        public const int HeadsPerGroup = 64;

        /// <summary>Tokens per chunk: the N of the score product, the K of the value product.</summary>
        public const int Chunk = 64;

        public const int Threads = 256;

        /// <summary>Columns of ō one wgmma of the value product covers (its N).</summary>
        public const int ColumnBlock = 64;

        /// <summary>sm_90's largest dynamic shared memory per block (227 KB).</summary>
        public const int MaxSharedBytes = 232448;

        public WarpGroupMlaShape(AttentionSpec attention)
        {
            Heads = attention.Heads;
            Latent = attention.KeyValueLoraRank;
            Rope = attention.QkRopeHeadDim;
        }

        public int Heads { get; }

        public int Latent { get; }

        public int Rope { get; }

        public int ScoreDims => Latent + Rope;

        public int KSteps => ScoreDims / 16;

        /// <summary>Bytes of the query tile, and of one stage of a chunk: 64 rows × ScoreDims bf16.</summary>
        public int OperandBytes => 64 * ScoreDims * 2;

        public int StageOffset(int stage) => OperandBytes * (1 + stage);

        public int ProbabilityOffset => 3 * OperandBytes;

        public int StatisticsOffset => ProbabilityOffset + (HeadsPerGroup * Chunk * 2);

        /// <summary>Three mbarriers on which bulk tensor copies complete: one per stage, one for the query tile.</summary>
        public int BarrierOffset => StatisticsOffset + (2 * HeadsPerGroup * 4);

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
        public string? Unsupported =>
            Heads % HeadsPerGroup != 0 ? $"{Heads} heads are not a multiple of the 64 rows of a warp-group MMA"
            : Latent % ColumnBlock != 0 || Latent / ColumnBlock * 3 / 8 == 0 ? $"d_c = {Latent} does not split into 64-column blocks for both warp groups"
            : Rope % 64 != 0 ? $"d_rope = {Rope} is not a multiple of 64 (the 128-byte swizzled blocks the tensor cores read)"
            : SharedBytes > MaxSharedBytes ? $"the query tile, two chunk stages and p need {SharedBytes} bytes of shared memory, more than sm_90's {MaxSharedBytes}"
            : null;
    }

    /// <summary>
    /// Hopper's FP8 GEMM with DeepSeek-V3's fine-grained scaling (wgmma e4m3, sm_90a): one 256-thread group per 128 × 128
    /// output tile, each warp group 64 of its rows; the k axis in blocks of 128 (one activation tile and one weight block),
    /// each staged by two bulk tensor copies (128 rows × 128 bytes of A and of B, 128-byte swizzled) into one of four stages.
    /// </summary>
    internal readonly struct Fp8GemmShape
    {
        public const int Tile = 128;

        public const int Threads = 256;

        public const int Stages = 4;

        /// <summary>One stage: the 128 × 128 codes of A, then those of B.</summary>
        public const int StageBytes = 2 * Tile * Tile;

        /// <summary>k-blocks whose weight scales the kernel caches in shared memory: k up to 131072.</summary>
        public const int MaxBlocks = 1024;

        /// <summary>Where the mbarriers (one per stage) start: after the stages and the weight scales of the tile's column block.</summary>
        public const int BarrierOffset = (Stages * StageBytes) + (4 * MaxBlocks);

        /// <summary>Where the release counters (one per stage: how many warp groups are done with it) start.</summary>
        public const int CounterOffset = BarrierOffset + (8 * Stages);

        public const int SharedBytes = CounterOffset + (4 * Stages);

        public Fp8GemmShape(PrecisionSpec precision)
        {
            Precision = precision;
        }

        public PrecisionSpec Precision { get; }

        /// <summary>wgmma k-steps (32 deep for e4m3) between promotions of the product into the FP32 sum.</summary>
        public int StepsPerPromotion => Precision.PromotionInterval / 32;

        /// <summary>Why the FP8 GEMM cannot be generated, or null when it can.</summary>
        public string? Unsupported =>
            Precision.Compute != NumericFormat.Fp8E4M3 ? $"the declaration computes in {Precision.Compute}, not FP8 E4M3"
            : Precision.ActivationTile != Tile || Precision.WeightBlock != Tile
                ? $"its k-blocks are {Tile} wide, so ActivationTile and WeightBlock must be {Tile} (they are {Precision.ActivationTile} and {Precision.WeightBlock})"
            : Tile % Precision.PromotionInterval != 0 ? $"PromotionInterval {Precision.PromotionInterval} does not divide the {Tile}-wide k-block"
            : null;
    }
}
