using System.Linq;
using ModelCompiler.Planning;
using static ModelCompiler.Generators.Emit.Literals;

namespace ModelCompiler.Generators.Emit
{
    internal static partial class KernelEmitter
    {
        /// <summary>Absorbed MLA decoding on Hopper's warp-group MMA (wgmma through inline PTX, sm_90a), for 64-head groups.</summary>
        private sealed partial class KernelSet
        {
            private const int TensorMapBytes = 128;

            private static string Registers(string name, int first) => "{" + string.Join(", ", Enumerable.Range(first, 32).Select(i => name + i)) + "}";

            /// <summary>Rescales this warp group's ō by the rows' α and adds p · c for its columns.</summary>
            private static void WriteAddValues(IndentedWriter w, int group)
            {
                w.WriteLine("float scaleLow = statistics[(16 * warp) + g], scaleHigh = statistics[(16 * warp) + g + 8];");
                w.WriteLine($"CudaAsm.Emit(RescaleOutput{group}, scaleLow, scaleHigh);");
                w.WriteLine($"CudaAsm.Emit(ValuesMma{group}, probabilityDescriptor, WarpGroupMma.Swizzled(valueBase));");
            }

            private void WriteMlaWarpGroup(IndentedWriter w)
            {
                var m = _warpGroup;
                var a = Attention;
                int groups = a.Heads / WarpGroupMlaShape.HeadsPerGroup;
                int maxBlocks = m.BlocksOfGroup1;
                int[] blocksOf = { m.BlocksOfGroup0, m.BlocksOfGroup1 };
                int stageBytes = m.OperandBytes;

                w.WriteLine("// Warp-group MMA (wgmma.mma_async m64n64k16, bf16 → FP32) as inline PTX. The accumulators are PTX registers the kernel");
                w.WriteLine("// declares once (mc_s: the 64×64 score tile; mc_o: this warp group's 64×256 share of ō; per thread 8 column tiles ×");
                w.WriteLine("// rows g, g + 8 of its warp's 16), so they never pass through ILGPU's operand slots. %0 and %1 are the shared-memory");
                w.WriteLine("// descriptors of A and B; each step advances both to the next 16-wide k-slice, and a block ends waiting for its products.");
                w.WriteLine($"private const string DeclareAccumulators = \".reg .f32 mc_s<32>;\\n.reg .f32 mc_o<{32 * maxBlocks}>;\\n.reg .f32 mc_ml, mc_mh, mc_sl, mc_sh;\\nmov.f32 mc_ml, 0fFF800000; mov.f32 mc_mh, 0fFF800000; mov.f32 mc_sl, 0f00000000; mov.f32 mc_sh, 0f00000000;\\n\"");
                for (int i = 0; i < 32 * maxBlocks; i += 16)
                {
                    w.WriteLine("    + \"" + string.Concat(Enumerable.Range(i, 16).Select(r => $"mov.f32 mc_o{r}, 0f00000000; ")) + "\\n\"");
                }

                w.WriteLine("    ;");
                w.WriteLine("private const string WarpGroupMmaOpen = \"{\\n.reg .b64 a, b;\\n.reg .pred p;\\nmov.b64 a, %0;\\nmov.b64 b, %1;\\nsetp.ne.b64 p, a, 0;\\n\";");
                w.WriteLine("private const string WarpGroupMmaClose = \"wgmma.commit_group.sync.aligned;\\nwgmma.wait_group.sync.aligned 0;\\n}\";");
                w.WriteLine();
                w.WriteLine("// Scores: A = q tile, B = cached tokens, both K-major in 128-byte-swizzled 64-value blocks: a k-step moves 32 bytes");
                w.WriteLine("// along the swizzled rows; after four, the next block starts 8192 bytes on.");
                w.WriteLine($"private const string ScoreStep = \"wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {Registers("mc_s", 0)}, a, b, p, 1, 1, 0, 0;\\nadd.s64 a, a, 2;\\nadd.s64 b, b, 2;\\n\";");
                w.WriteLine("private const string NextScoreBlock = \"add.s64 a, a, 504;\\nadd.s64 b, b, 504;\\n\";");
                w.WriteLine();
                w.WriteLine($"/// <summary>S[64 heads × 64 tokens] = q · kᵀ over the {m.ScoreDims} score dimensions ({m.KSteps} k-steps) into mc_s.</summary>");
                w.WriteLine("private const string ScoresMma = WarpGroupMmaOpen");
                w.WriteLine("    + \"" + string.Concat(Enumerable.Range(0, 32).Select(r => $"mov.f32 mc_s{r}, 0f00000000; ")) + "\\nwgmma.fence.sync.aligned;\\n\"");
                for (int i = 0; i < m.KSteps; i += 4)
                {
                    w.WriteLine("    + ScoreStep + ScoreStep + ScoreStep + ScoreStep" + (i + 4 < m.KSteps ? " + NextScoreBlock" : string.Empty));
                }

                w.WriteLine("    + WarpGroupMmaClose;");
                w.WriteLine();
                w.WriteLine("// Values: A = p (K-major, no swizzle: two 1024-byte core columns per k-step), B = the same cached tokens read transposed");
                w.WriteLine("// (MN-major, imm-trans-b 1): a k-step is 16 swizzled 128-byte rows; four of them end one 64-column block where the next begins.");
                for (int b = 0; b < maxBlocks; b++)
                {
                    w.WriteLine($"private const string ValueStep{b} = \"wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {Registers("mc_o", 32 * b)}, a, b, p, 1, 1, 0, 1;\\nadd.s64 a, a, 128;\\nadd.s64 b, b, 128;\\n\";");
                }

                w.WriteLine($"private const string NextValueBlock = \"sub.s64 a, a, {128 * (WarpGroupMlaShape.Chunk / 16)};\\n\"; // p from its start again");
                w.WriteLine();
                for (int group = 0; group < 2; group++)
                {
                    int blocks = blocksOf[group];
                    w.WriteLine($"/// <summary>Warp group {group}: ō[64 heads × {blocks * 64} columns] += p[64 × {WarpGroupMlaShape.Chunk} tokens] · c[{WarpGroupMlaShape.Chunk} tokens × {blocks * 64} columns]: {blocks} blocks of 64 columns × {WarpGroupMlaShape.Chunk / 16} k-steps, one wait.</summary>");
                    w.WriteLine($"private const string ValuesMma{group} = WarpGroupMmaOpen + \"wgmma.fence.sync.aligned;\\n\"");
                    for (int b = 0; b < blocks; b++)
                    {
                        w.WriteLine($"    {string.Join(" ", Enumerable.Repeat($"+ ValueStep{b}", WarpGroupMlaShape.Chunk / 16))}{(b + 1 < blocks ? " + NextValueBlock" : string.Empty)}");
                    }

                    w.WriteLine("    + WarpGroupMmaClose;");
                    w.WriteLine();
                }

                w.WriteLine("// Online softmax of the score tile, in PTX so that the 32 scores stay registers: %0 = valid columns of this thread");
                w.WriteLine("// (length − chunk start − 2t), %1 = the shared address of its first p word, %2 = the address of its row's α, %3 =");
                w.WriteLine("// softmax scale · log2(e). Each row's 64 scores sit in 4 lanes (16 each), so the row max needs two shuffles; the");
                w.WriteLine("// running max and sum (mc_ml, mc_mh, mc_sl, mc_sh: rows g and g + 8, this thread's share of the sum) stay registers too.");
                w.WriteLine("private const string Softmax = \"{\\n.reg .f32 x<32>, ml, mh, nl, nh, al, ah, u;\\n.reg .pred q;\\n.reg .b32 w;\\n\"");
                w.WriteLine("    + \"" + string.Concat(Enumerable.Range(0, 32).Select(r => $"mul.f32 x{r}, mc_s{r}, %3; ")) + "\\n\"");
                for (int j = 0; j < 8; j++)
                {
                    w.WriteLine($"    + \"setp.le.s32 q, %0, {8 * j}; @q mov.f32 x{4 * j}, 0fFF800000; @q mov.f32 x{(4 * j) + 2}, 0fFF800000; setp.le.s32 q, %0, {(8 * j) + 1}; @q mov.f32 x{(4 * j) + 1}, 0fFF800000; @q mov.f32 x{(4 * j) + 3}, 0fFF800000;\\n\"");
                }

                foreach (var (row, first) in new[] { ("l", 0), ("h", 2) })
                {
                    string m0 = "m" + row;
                    var lanes = Enumerable.Range(0, 8).SelectMany(j => new[] { (4 * j) + first, (4 * j) + first + 1 }).ToList();
                    w.WriteLine($"    + \"mov.f32 {m0}, x{lanes[0]}; " + string.Concat(lanes.Skip(1).Select(r => $"max.f32 {m0}, {m0}, x{r}; ")) + "\\n\"");
                    w.WriteLine($"    + \"shfl.sync.bfly.b32 u, {m0}, 1, 0x1f, 0xffffffff; max.f32 {m0}, {m0}, u; shfl.sync.bfly.b32 u, {m0}, 2, 0x1f, 0xffffffff; max.f32 {m0}, {m0}, u;\\n\"");
                    w.WriteLine($"    + \"max.f32 n{row}, mc_m{row}, {m0}; sub.f32 a{row}, mc_m{row}, n{row}; ex2.approx.ftz.f32 a{row}, a{row}; mov.f32 mc_m{row}, n{row};\\n\"");
                    w.WriteLine("    + \"" + string.Concat(lanes.Select(r => $"sub.f32 x{r}, x{r}, n{row}; ex2.approx.ftz.f32 x{r}, x{r}; ")) + "\\n\"");
                    w.WriteLine($"    + \"mul.f32 mc_s{row}, mc_s{row}, a{row}; " + string.Concat(lanes.Select(r => $"add.f32 mc_s{row}, mc_s{row}, x{r}; ")) + "\\n\"");
                }

                w.WriteLine("    + \"" + string.Concat(Enumerable.Range(0, 8).Select(j => $"cvt.rn.bf16x2.f32 w, x{(4 * j) + 1}, x{4 * j}; st.shared.b32 [%1+{1024 * j}], w; cvt.rn.bf16x2.f32 w, x{(4 * j) + 3}, x{(4 * j) + 2}; st.shared.b32 [%1+{(1024 * j) + 128}], w; ")) + "\\n\"");
                w.WriteLine("    + \"st.shared.f32 [%2], al; st.shared.f32 [%2+32], ah;\\n}\";");
                w.WriteLine();
                w.WriteSummary("The row sums over the four lanes of each row, in place (mc_sl, mc_sh).");
                w.WriteLine("private const string RowSums = \"{\\n.reg .f32 u;\\nshfl.sync.bfly.b32 u, mc_sl, 1, 0x1f, 0xffffffff; add.f32 mc_sl, mc_sl, u; shfl.sync.bfly.b32 u, mc_sl, 2, 0x1f, 0xffffffff; add.f32 mc_sl, mc_sl, u;\\n\"");
                w.WriteLine("    + \"shfl.sync.bfly.b32 u, mc_sh, 1, 0x1f, 0xffffffff; add.f32 mc_sh, mc_sh, u; shfl.sync.bfly.b32 u, mc_sh, 2, 0x1f, 0xffffffff; add.f32 mc_sh, mc_sh, u;\\n}\";");
                w.WriteLine();
                w.WriteSummary("ō · (1 / row sum) to global memory: %0, %1 = the addresses of this thread's first pair in rows g and g + 8, %2, %3 = the rows' 1 / sum.");
                for (int group = 0; group < 2; group++)
                {
                    w.WriteLine($"private const string StoreOutput{group} = \"{{\\n.reg .f32 a, b;\\n\"");
                    for (int b = 0; b < blocksOf[group]; b++)
                    {
                        w.WriteLine("    + \"" + string.Concat(Enumerable.Range(0, 8).Select(j =>
                        {
                            int r = (32 * b) + (4 * j), offset = (256 * b) + (32 * j);
                            return $"mul.f32 a, mc_o{r}, %2; mul.f32 b, mc_o{r + 1}, %2; st.global.v2.f32 [%0+{offset}], {{a, b}}; mul.f32 a, mc_o{r + 2}, %3; mul.f32 b, mc_o{r + 3}, %3; st.global.v2.f32 [%1+{offset}], {{a, b}}; ";
                        })) + "\\n\"");
                    }

                    w.WriteLine("    + \"}\";");
                }

                w.WriteLine();
                w.WriteSummary("ō ← ō · α per row: %0 for rows g, %1 for rows g + 8 (warp group 0's blocks, then warp group 1's).");
                for (int group = 0; group < 2; group++)
                {
                    w.WriteLine($"private const string RescaleOutput{group} =");
                    for (int b = 0; b < blocksOf[group]; b++)
                    {
                        w.WriteLine($"    {(b == 0 ? "" : "+ ")}\"" + string.Concat(Enumerable.Range(32 * b, 32).Select(r => $"mul.f32 mc_o{r}, mc_o{r}, %{((r % 4) < 2 ? 0 : 1)}; ")) + "\\n\"");
                    }

                    w.WriteLine("    ;");
                }
                w.WriteLine();

                w.WriteLine("/// <summary>");
                w.WriteLine("/// Absorbed MLA decoding on Hopper's warp-group MMA, for a batch of sequences of their own lengths: for each head h,");
                w.WriteLine("/// score_j = (q̃_h · c_j + q_pe,h · k_pe,j) · SoftmaxScale, p = softmax(score), ō_h = Σ_j p_j · c_j (W_UV is applied after).");
                w.WriteLine($"/// Launch: one group of 256 threads (two warp groups) per (sequence, split, 64 heads): batch × splits × {groups} groups,");
                w.WriteLine($"/// {m.SharedBytes} bytes of dynamic shared memory, PTX target sm_90a. Shared memory holds the group's query tile and two stages");
                w.WriteLine($"/// of {WarpGroupMlaShape.Chunk}-token chunks as 128-byte-swizzled blocks of 64 values × 64 rows (what TMA's SWIZZLE_128B writes and");
                w.WriteLine("/// wgmma reads), and p as plain core matrices (8 rows × 16 bytes; core (token block, head group) at (block · 8 + group) ·");
                w.WriteLine("/// 128 bytes). Bulk tensor copies bring the query tile and each chunk (one per 64-value block, completing on the stage's");
                w.WriteLine("/// mbarrier) two chunks ahead; rows past the length are zeroed. Warp group 0 computes a chunk's 64 × 64 scores in one");
                w.WriteLine("/// chain of wgmma, the online softmax in registers (each warp owns 16 whole rows: a row's max and sum need only 4-lane");
                w.WriteLine($"/// shuffles), writes p as bf16 and adds p · c into its {m.BlocksOfGroup0} column blocks of ō; warp group 1 adds the same chunk's p · c into");
                w.WriteLine($"/// the other {m.BlocksOfGroup1} of the {m.BlocksOfGroup0 + m.BlocksOfGroup1} blocks of 64 columns (up to {32 * maxBlocks} FP32 accumulators per thread) while warp group 0 scores the");
                w.WriteLine("/// next chunk.");
                w.WriteLine("/// Precision: bf16 operands, FP32 accumulation and softmax; p rounded to bf16 for the second product, as FlashMLA does.");
                w.WriteLine("/// </summary>");
                w.WriteLine("/// <param name=\"queryMaps\">Device address of two tensor maps (TensorMap.Tiled2D, 64 × 64 boxes, 128-byte swizzle): q̃");
                w.WriteLine("/// [batch · heads, d_c] bf16, then 128 bytes on q_pe [batch · heads, d_rope].</param>");
                w.WriteLine("/// <param name=\"cacheMaps\">Device address of two more such maps: the cached c_KV");
                w.WriteLine("/// [batch · capacity, d_c] bf16, then 128 bytes on the cached k_pe [batch · capacity, d_rope].</param>");
                w.WriteLine("/// <param name=\"lengths\">Cached tokens of each sequence [batch] (at most capacity).</param>");
                w.WriteLine($"/// <param name=\"output\">Device address of the softmax-normalised output of each split [batch, splits, {a.Heads}, {a.KeyValueLoraRank}] FP32.</param>");
                w.WriteLine($"/// <param name=\"logSumExp\">Natural log-sum-exp of each split's scaled scores [batch, splits, {a.Heads}] (−∞ for an empty split).</param>");
                w.WriteLine("/// <param name=\"capacity\">Tokens the cache holds per sequence.</param>");
                w.WriteLine($"/// <param name=\"splits\">Splits per sequence: split s takes {WarpGroupMlaShape.Chunk}-token chunks [s·c, s·c + c) with c = ⌈⌈length / {WarpGroupMlaShape.Chunk}⌉ / splits⌉.</param>");
                w.WriteLine("public static void MlaDecodeWarpGroup(long queryMaps, long cacheMaps,");
                w.WriteLine("    ArrayView<int> lengths, long output, ArrayView<float> logSumExp, int capacity, int splits)");
                using (w.WriteBraces())
                {
                    WriteGroupIndex(w, groups);
                    w.WriteLine("int thread = Group.IdxX, warpGroup = thread >> 7, warp = (thread >> 5) & 3, lane = thread & 31;");
                    w.WriteLine("int g = lane >> 2, t = lane & 3; // accumulator fragment coordinates: rows 16·warp + g and + 8, columns 8j + 2t, + 1");
                    WriteChunkRange(w, WarpGroupMlaShape.Chunk);
                    w.WriteLine();
                    w.WriteLine($"// Shared memory: q tile at 0, chunk stages at {m.StageOffset(0)} and {m.StageOffset(1)}, p at {m.ProbabilityOffset}, row statistics at {m.StatisticsOffset}.");
                    w.WriteLine("var shared = SharedMemory.GetDynamic<Float4>();");
                    w.WriteLine($"var statistics = shared.SubView({m.StatisticsOffset / 16}, {2 * WarpGroupMlaShape.HeadsPerGroup * 4 / 16}).Cast<float>(); // [0, 64): this chunk's rescale; [64, 128): 1 / row sum");
                    w.WriteLine("CudaAsm.Emit(\"mov.u32 %0, __dyn_shared_alloca;\", out uint sharedBase); // the same memory as a 32-bit shared-window address");
                    w.WriteLine();
                    w.WriteLine($"uint barriers = sharedBase + {m.BarrierOffset}u;");
                    w.WriteLine();
                    w.WriteLine($"// Output accumulators: ō rows 16·warp + g, + 8 × this warp group's column blocks ({m.BlocksOfGroup0} for group 0, {m.BlocksOfGroup1} for group 1, of 64 each).");
                    w.WriteLine("CudaAsm.Emit(DeclareAccumulators);");
                    w.WriteLine($"ulong queryDescriptor = WarpGroupMma.Swizzled(sharedBase), probabilityDescriptor = WarpGroupMma.Descriptor(sharedBase + {m.ProbabilityOffset}u, 1024, 128);");
                    w.WriteLine();
                    w.WriteLine("if (firstChunk < endChunk)");
                    using (w.WriteBraces())
                    {
                        w.WriteLine("// Three mbarriers (the two stages, the query tile), then the query tile and the first two chunks by bulk tensor copies.");
                        w.WriteLine("if (thread == 0) CudaAsm.Emit(\"mbarrier.init.shared::cta.b64 [%0], 1;\\nmbarrier.init.shared::cta.b64 [%1], 1;\\nmbarrier.init.shared::cta.b64 [%2], 1;\\nfence.mbarrier_init.release.cluster;\", barriers, barriers + 8u, barriers + 16u);");
                        w.WriteLine("Group.Barrier(); // the barriers are initialised before anyone waits on them");
                        w.WriteLine("if (warp == 0 && warpGroup == 0)");
                        using (w.WriteBraces())
                        {
                            w.WriteLine($"IssueTile(queryMaps, sharedBase, barriers + 16u, (sequence * {a.Heads}) + (headGroup * 64), lane);");
                            w.WriteLine($"IssueTile(cacheMaps, sharedBase + {m.StageOffset(0)}u, barriers, sequence * capacity + (firstChunk * {WarpGroupMlaShape.Chunk}), lane);");
                            w.WriteLine($"if (firstChunk + 1 < endChunk) IssueTile(cacheMaps, sharedBase + {m.StageOffset(1)}u, barriers + 8u, sequence * capacity + ((firstChunk + 1) * {WarpGroupMlaShape.Chunk}), lane);");
                        }

                        w.WriteLine("CudaAsm.Emit(WaitForPhase, barriers + 16u, 0u); // the query tile");
                    }

                    w.WriteLine();
                    w.WriteLine("// Warp group 0 scores chunk c and writes its p while warp group 1 still adds chunk c − 1 into its blocks of ō. Named");
                    w.WriteLine("// barriers hand over: 1 p ready, 2 p free again, 3 + stage parity warp group 0 done with a stage, which warp group 1");
                    w.WriteLine("// then refills two chunks ahead; 5 orders warp group 0's own stores.");
                    w.WriteLine("for (int chunk = firstChunk; chunk < endChunk; chunk++)");
                    using (w.WriteBraces())
                    {
                        w.WriteLine("int stage = (chunk - firstChunk) & 1;");
                        w.WriteLine($"uint stageBase = sharedBase + {m.StageOffset(0)}u + (uint)(stage * {stageBytes});");
                        w.WriteLine($"uint valueBase = stageBase + (uint)(warpGroup * {m.BlocksOfGroup0 * WarpGroupMlaShape.Chunk * 128}); // this warp group's first column block (64 values each)");
                        w.WriteLine("CudaAsm.Emit(WaitForPhase, barriers + (uint)(stage * 8), (uint)(((chunk - firstChunk) >> 1) & 1)); // the stage's parity flips with each use");
                        w.WriteLine("if (warpGroup == 0)");
                        using (w.WriteBraces())
                        {
                            w.WriteLine($"int validRows = length - (chunk * {WarpGroupMlaShape.Chunk});");
                            w.WriteLine($"if (validRows < {WarpGroupMlaShape.Chunk})");
                            using (w.WriteBraces())
                            {
                                w.WriteLine("// The copies brought whatever the cache holds past the length: zeros instead, so that p = 0 never meets a NaN.");
                                w.WriteLine($"for (int i = thread; i < ({WarpGroupMlaShape.Chunk} - validRows) * {m.Blocks * 8}; i += 128)");
                                using (w.WriteBraces())
                                {
                                    w.WriteLine($"int row = validRows + (i / {m.Blocks * 8}), piece = i % {m.Blocks * 8}; // a row is 128 bytes of each 64-value block: the swizzle only permutes them");
                                    w.WriteLine($"shared[({m.StageOffset(0)} + (stage * {stageBytes}) + ((piece >> 3) * {WarpGroupMlaShape.Chunk * 128}) + (row * 128) + ((piece & 7) * 16)) / 16] = new Float4(0f);");
                                }

                                w.WriteLine("CudaAsm.Emit(\"fence.proxy.async.shared::cta;\\nbar.sync 5, 128;\"); // the zeros, visible to the tensor cores");
                            }

                            w.WriteLine();
                            w.WriteLine("// Scores of the group's 64 heads × this chunk's 64 tokens.");
                            w.WriteLine("CudaAsm.Emit(ScoresMma, queryDescriptor, WarpGroupMma.Swizzled(stageBase));");
                            w.WriteLine("if (chunk > firstChunk) CudaAsm.Emit(\"bar.sync 2, 256;\"); // warp group 1 has added the previous p");
                            string scaleLog2 = Float(RopeMath.SoftmaxScale(_spec) * 1.4426950408889634);
                            w.WriteLine($"// Online softmax in base 2 ({ScaleLog2Comment}); columns past the length are −∞; p (bf16) into core");
                            w.WriteLine("// (token block j, head group 2·warp (+ 1)), row g, tokens 2t and 2t + 1; each row's α into the statistics.");
                            w.WriteLine($"int valid = length - (chunk * {WarpGroupMlaShape.Chunk}) - (2 * t);");
                            w.WriteLine($"CudaAsm.Emit(Softmax, valid, sharedBase + {m.ProbabilityOffset}u + (uint)(((64 * warp) + (4 * g) + t) * 4), sharedBase + {m.StatisticsOffset}u + (uint)(((16 * warp) + g) * 4), {scaleLog2});");
                            w.WriteLine("CudaAsm.Emit(\"fence.proxy.async.shared::cta;\\nbar.arrive 1, 256;\"); // p is ready for the tensor cores and warp group 1");
                            WriteAddValues(w, 0);
                            w.WriteLine("CudaAsm.Emit(\"bar.arrive %0, 256;\", 3 + stage); // warp group 0 is done with this stage");
                        }

                        w.WriteLine("else");
                        using (w.WriteBraces())
                        {
                            w.WriteLine("CudaAsm.Emit(\"bar.sync 1, 256;\"); // p of this chunk");
                            WriteAddValues(w, 1);
                            w.WriteLine("if (chunk + 1 < endChunk) CudaAsm.Emit(\"bar.arrive 2, 256;\"); // p may be overwritten");
                            w.WriteLine("CudaAsm.Emit(\"bar.sync %0, 256;\", 3 + stage); // warp group 0 is done with this stage too: refill it");
                            w.WriteLine($"if (warp == 0 && chunk + 2 < endChunk) IssueTile(cacheMaps, stageBase, barriers + (uint)(stage * 8), sequence * capacity + ((chunk + 2) * {WarpGroupMlaShape.Chunk}), lane);");
                        }
                    }

                    w.WriteLine();
                    w.WriteLine("// Row sums over the four lanes of each row; warp group 0 publishes 1 / sum and writes the log-sum-exp.");
                    w.WriteLine("if (warpGroup == 0)");
                    using (w.WriteBraces())
                    {
                        w.WriteLine("CudaAsm.Emit(RowSums);");
                        w.WriteLine("CudaAsm.Emit(\"mov.f32 %0, mc_sl;\", out float sumLow); CudaAsm.Emit(\"mov.f32 %0, mc_sh;\", out float sumHigh);");
                        w.WriteLine("CudaAsm.Emit(\"mov.f32 %0, mc_ml;\", out float maxLow); CudaAsm.Emit(\"mov.f32 %0, mc_mh;\", out float maxHigh);");
                        w.WriteLine("if (t == 0)");
                        using (w.WriteBraces())
                        {
                            w.WriteLine("statistics[64 + (16 * warp) + g] = sumLow > 0f ? 1f / sumLow : 0f; // an empty split writes zeros");
                            w.WriteLine("statistics[64 + (16 * warp) + g + 8] = sumHigh > 0f ? 1f / sumHigh : 0f;");
                            w.WriteLine($"long at = (((long)sequence * splits) + split) * {a.Heads} + (headGroup * 64) + (16 * warp) + g;");
                            w.WriteLine("logSumExp[at] = sumLow > 0f ? (maxLow + FastMath.Log2(sumLow)) * 0.6931472f : float.NegativeInfinity; // back to natural log");
                            w.WriteLine("logSumExp[at + 8] = sumHigh > 0f ? (maxHigh + FastMath.Log2(sumHigh)) * 0.6931472f : float.NegativeInfinity;");
                        }
                    }

                    w.WriteLine();
                    w.WriteLine("Group.Barrier();");
                    w.WriteLine("float inverseLow = statistics[64 + (16 * warp) + g], inverseHigh = statistics[64 + (16 * warp) + g + 8];");
                    w.WriteLine($"ulong outLow = (ulong)output + (ulong)(((((long)sequence * splits) + split) * {a.Heads} + (headGroup * 64) + (16 * warp) + g) * {a.KeyValueLoraRank} + (warpGroup * {m.BlocksOfGroup0 * 64}) + (2 * t)) * 4;");
                    w.WriteLine($"if (warpGroup == 0) CudaAsm.Emit(StoreOutput0, outLow, outLow + {8 * a.KeyValueLoraRank * 4}ul, inverseLow, inverseHigh);");
                    w.WriteLine($"else CudaAsm.Emit(StoreOutput1, outLow, outLow + {8 * a.KeyValueLoraRank * 4}ul, inverseLow, inverseHigh);");
                }

                w.WriteLine();
                w.WriteSummary($"Warp 0: arms barrier for {m.OperandBytes} bytes and issues the {m.Blocks} bulk tensor copies of a 64-row tile (lane b copies block b: values 64b … 64b + 63 of rows row … row + 63, flattened over the batch, 128-byte swizzled): the latent map first, then the rotary one 128 bytes on.");
                w.WriteLine("[System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]");
                w.WriteLine("private static void IssueTile(long maps, uint target, uint barrier, int row, int lane)");
                using (w.WriteBraces())
                {
                    w.WriteLine($"if (lane == 0) CudaAsm.Emit(\"mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], {m.OperandBytes};\", barrier);");
                    w.WriteLine("Warp.Barrier();");
                    int latentBlocks = m.Latent / 64;
                    w.WriteLine($"if (lane < {m.Blocks}) CudaAsm.Emit(\"cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {{%2, %3}}], [%4];\", target + (uint)(lane * {WarpGroupMlaShape.Chunk * 128}), (ulong)maps + (lane < {latentBlocks} ? 0ul : {TensorMapBytes}ul), (lane < {latentBlocks} ? lane : lane - {latentBlocks}) * 64, row, barrier);");
                }

                w.WriteLine();
            }

            /// <summary>The mbarrier wait the kernels on warp-group MMA share (MLA decoding, the FP8 GEMM); their descriptors come from WarpGroupMma.</summary>
            private static void WriteWaitForPhase(IndentedWriter w)
            {
                w.WriteSummary("Waits until the mbarrier at %0 completes the phase of parity %1: the bulk copies it counts have landed. (A label inside braces is local to them, so a kernel may wait in several places.)");
                w.WriteLine("private const string WaitForPhase = \"{\\n.reg .pred done;\\nWAIT:\\nmbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\\n@!done bra WAIT;\\n}\";");
                w.WriteLine();
            }
        }
    }
}
