using System.Linq;
using ModelCompiler.Planning;

namespace ModelCompiler.Generators.Emit
{
    internal static partial class KernelEmitter
    {
        /// <summary>The FP8 GEMM with fine-grained scaling on Hopper's warp-group MMA (wgmma e4m3 through inline PTX, sm_90a).</summary>
        private sealed partial class KernelSet
        {
            private void WriteFp8Gemm(IndentedWriter w)
            {
                const int T = Fp8GemmShape.Tile;
                var g = _gemm;
                int steps = g.StepsPerPromotion;
                int intervals = T / g.Precision.PromotionInterval;
                string accumulators = "{" + string.Join(", ", Enumerable.Range(0, 64).Select(i => "mc_t" + i)) + "}";

                w.WriteLine("// FP8 GEMM (wgmma.mma_async m64n128k32, e4m3 × e4m3 → FP32) as inline PTX. Per thread, mc_t holds one promotion");
                w.WriteLine("// interval's product of its warp group's 64 × 128 share of the tile (16 column tiles × rows g, g + 8 of its warp's 16) and");
                w.WriteLine("// mc_c the scaled FP32 sum, both PTX registers declared once, so they never pass through ILGPU's operand slots.");
                w.WriteLine("private const string DeclareGemmAccumulators = \".reg .f32 mc_t<64>;\\n.reg .f32 mc_c<64>;\\n\"");
                for (int i = 0; i < 64; i += 16)
                {
                    w.WriteLine("    + \"" + string.Concat(Enumerable.Range(i, 16).Select(r => $"mov.f32 mc_c{r}, 0f00000000; ")) + "\\n\"");
                }

                w.WriteLine("    ;");
                w.WriteLine();
                w.WriteLine($"/// <summary>mc_t = A · Bᵀ over one promotion interval ({g.Precision.PromotionInterval} values of k, {steps} k-steps of 32): %0, %1 = the 128-byte-swizzled descriptors of A's 64 rows and B's 128; a k-step moves 32 bytes along the rows.</summary>");
                w.WriteLine("private const string GemmInterval = \"{\\n.reg .b64 a, b;\\n.reg .pred p;\\nmov.b64 a, %0;\\nmov.b64 b, %1;\\nsetp.ne.b64 p, a, 0;\\n\"");
                w.WriteLine("    + \"" + string.Concat(Enumerable.Range(0, 64).Select(r => $"mov.f32 mc_t{r}, 0f00000000; ")) + "\\nwgmma.fence.sync.aligned;\\n\"");
                for (int s = 0; s < steps; s++)
                {
                    w.WriteLine($"    + \"wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {accumulators}, a, b, p, 1, 1;\\n{(s + 1 < steps ? "add.s64 a, a, 2;\\nadd.s64 b, b, 2;\\n" : string.Empty)}\"");
                }

                w.WriteLine("    + \"wgmma.commit_group.sync.aligned;\\nwgmma.wait_group.sync.aligned 0;\\n}\";");
                w.WriteLine();
                w.WriteSummary("Promotion: mc_c += mc_t · scale, %0 the scale of rows g (activation tile scale × weight block scale), %1 that of rows g + 8.");
                w.WriteLine("private const string GemmPromote =");
                for (int i = 0; i < 64; i += 16)
                {
                    w.WriteLine($"    {(i == 0 ? string.Empty : "+ ")}\"" + string.Concat(Enumerable.Range(i, 16).Select(r => $"fma.rn.f32 mc_c{r}, mc_t{r}, %{((r % 4) < 2 ? 0 : 1)}, mc_c{r}; ")) + "\\n\"");
                }

                w.WriteLine("    ;");
                w.WriteLine();
                w.WriteSummary("mc_c to global memory: %0, %1 = the addresses of this thread's first pair in rows g and g + 8, stored where %2, %3 (the rows exist) are non-zero.");
                w.WriteLine("private const string StoreGemmTile = \"{\\n.reg .pred lo, hi;\\nsetp.ne.s32 lo, %2, 0;\\nsetp.ne.s32 hi, %3, 0;\\n\"");
                for (int j = 0; j < 16; j += 4)
                {
                    w.WriteLine("    + \"" + string.Concat(Enumerable.Range(j, 4).Select(c =>
                        $"@lo st.global.v2.f32 [%0+{32 * c}], {{mc_c{4 * c}, mc_c{(4 * c) + 1}}}; @hi st.global.v2.f32 [%1+{32 * c}], {{mc_c{(4 * c) + 2}, mc_c{(4 * c) + 3}}}; ")) + "\\n\"");
                }

                w.WriteLine("    + \"}\";");
                w.WriteLine();

                w.WriteLine("/// <summary>");
                w.WriteLine("/// FP8 GEMM with DeepSeek-V3's fine-grained scaling, on Hopper's warp-group MMA: output[i, j] = Σ over k-blocks b of");
                w.WriteLine($"/// (Σ_{{k in b}} a[i, k] · w[j, k]) · activationScales[i, b] · weightScales[j / {T}, b], a and w E4M3 codes, each k-block {T} wide");
                w.WriteLine($"/// (one activation tile, one weight block). The E4M3 products accumulate in the tensor cores for {g.Precision.PromotionInterval} values of k, then");
                w.WriteLine("/// are promoted: scaled and added to FP32 registers (DeepSeek-V3 §3.3.2: Hopper's FP8 accumulation keeps about 14 bits).");
                w.WriteLine($"/// Launch: one group of {Fp8GemmShape.Threads} threads (two warp groups) per {T} × {T} output tile, ⌈m / {T}⌉ · n / {T} groups, tiles of one");
                w.WriteLine($"/// column block consecutive (the groups in flight share w's tile; a is re-read from L2), {Fp8GemmShape.SharedBytes} bytes of dynamic");
                w.WriteLine($"/// shared memory, PTX target sm_90a. Each k-block's {T} rows of a and of w ({T} bytes each) arrive by two bulk tensor copies");
                w.WriteLine($"/// (128-byte swizzled, as wgmma reads them) into one of {Fp8GemmShape.Stages} stages, {Fp8GemmShape.Stages} k-blocks ahead; warp group h multiplies rows");
                w.WriteLine($"/// 64h … 64h + 63 of the tile by all {T} columns with wgmma.m64n128k32 ({steps} per promotion), 128 FP32 registers per thread. The");
                w.WriteLine("/// warp groups never wait for each other: the second to finish with a stage refills it (a counter per stage), so one promotes");
                w.WriteLine("/// while the other's products run in the tensor cores.");
                w.WriteLine("/// Rows past m arrive as zeros and are not stored.");
                w.WriteLine("/// </summary>");
                w.WriteLine($"/// <param name=\"maps\">Device address of two tensor maps (TensorMap.Tiled2D, bytes, {T} × {T} boxes, 128-byte swizzle): a [m, k], then {TensorMapBytes} bytes on w [n, k].</param>");
                w.WriteLine($"/// <param name=\"activationScales\">FP32 scale of each 1 × {T} tile of a [m, k / {T}] (act_quant's).</param>");
                w.WriteLine($"/// <param name=\"weightScales\">FP32 scale of each {T} × {T} block of w [n / {T}, k / {T}] (the checkpoint's weight_scale_inv).</param>");
                w.WriteLine("/// <param name=\"output\">Device address of the FP32 result [m, n].</param>");
                w.WriteLine("/// <param name=\"m\">Rows of a (tokens).</param>");
                w.WriteLine($"/// <param name=\"n\">Rows of w (output features), a multiple of {T}.</param>");
                w.WriteLine($"/// <param name=\"k\">Inner dimension, a multiple of {T}, at most {T * Fp8GemmShape.MaxBlocks} (the column block's {Fp8GemmShape.MaxBlocks} weight scales are cached in shared memory).</param>");
                w.WriteLine("public static void Fp8Gemm(long maps, ArrayView<float> activationScales, ArrayView<float> weightScales, long output, int m, int n, int k)");
                using (w.WriteBraces())
                {
                    w.WriteLine("int thread = Group.IdxX, warpGroup = thread >> 7, warp = (thread >> 5) & 3, lane = thread & 31;");
                    w.WriteLine("int g = lane >> 2, t = lane & 3; // accumulator fragment coordinates: rows 16·warp + g and + 8, columns 8j + 2t, + 1");
                    w.WriteLine($"int rowTiles = (m + {T - 1}) / {T};");
                    w.WriteLine("int rowTile = Grid.IdxX % rowTiles, columnTile = Grid.IdxX / rowTiles;");
                    w.WriteLine($"int blocks = k / {T};");
                    w.WriteLine();
                    w.WriteLine($"// Shared memory: {Fp8GemmShape.Stages} stages of {Fp8GemmShape.StageBytes} bytes (a's {T} rows, then w's), the weight scales of this column block,");
                    w.WriteLine("// one mbarrier per stage (its copies have landed), one counter per stage (warp groups done with it, ever).");
                    w.WriteLine("var shared = SharedMemory.GetDynamic<Float4>();");
                    w.WriteLine($"var blockScales = shared.SubView({Fp8GemmShape.Stages * Fp8GemmShape.StageBytes / 16}, {Fp8GemmShape.MaxBlocks / 4}).Cast<float>();");
                    w.WriteLine($"var released = shared.SubView({Fp8GemmShape.CounterOffset / 16}, {(4 * Fp8GemmShape.Stages + 15) / 16}).Cast<uint>();");
                    w.WriteLine("CudaAsm.Emit(\"mov.u32 %0, __dyn_shared_alloca;\", out uint sharedBase); // the same memory as a 32-bit shared-window address");
                    w.WriteLine($"uint barriers = sharedBase + {Fp8GemmShape.BarrierOffset}u, counters = sharedBase + {Fp8GemmShape.CounterOffset}u;");
                    w.WriteLine("CudaAsm.Emit(DeclareGemmAccumulators);");
                    w.WriteLine("if (thread == 0)");
                    using (w.WriteBraces())
                    {
                        w.WriteLine("CudaAsm.Emit(\"" + string.Concat(Enumerable.Range(0, Fp8GemmShape.Stages).Select(s => $"mbarrier.init.shared::cta.b64 [%{s}], 1;\\n")) + "fence.mbarrier_init.release.cluster;\", "
                            + string.Join(", ", Enumerable.Range(0, Fp8GemmShape.Stages).Select(s => s == 0 ? "barriers" : $"barriers + {8 * s}u")) + ");");
                    }

                    w.WriteLine();
                    w.WriteLine($"if (thread < {Fp8GemmShape.Stages}) released[thread] = 0;");
                    w.WriteLine($"for (int block = thread; block < blocks; block += {Fp8GemmShape.Threads}) blockScales[block] = weightScales[((long)columnTile * blocks) + block];");
                    w.WriteLine("Group.Barrier(); // the barriers are initialised and the scales cached before anyone uses them");
                    w.WriteLine($"if (thread == 0) for (int block = 0; block < Math.Min({Fp8GemmShape.Stages}, blocks); block++) IssueGemmStage(maps, sharedBase + (uint)(block * {Fp8GemmShape.StageBytes}), barriers + (uint)(block * 8), rowTile * {T}, columnTile * {T}, block * {T});");
                    w.WriteLine();
                    w.WriteLine($"int row = (rowTile * {T}) + (64 * warpGroup) + (16 * warp) + g; // and row + 8");
                    w.WriteLine("long scalesLow = (long)Math.Min(row, m - 1) * blocks, scalesHigh = (long)Math.Min(row + 8, m - 1) * blocks;");
                    w.WriteLine("for (int block = 0; block < blocks; block++)");
                    using (w.WriteBraces())
                    {
                        w.WriteLine($"int stage = block % {Fp8GemmShape.Stages};");
                        w.WriteLine($"uint stageBase = sharedBase + (uint)(stage * {Fp8GemmShape.StageBytes});");
                        w.WriteLine("float weightScale = blockScales[block];");
                        w.WriteLine("float scaleLow = activationScales[scalesLow + block] * weightScale, scaleHigh = activationScales[scalesHigh + block] * weightScale;");
                        w.WriteLine($"CudaAsm.Emit(WaitForPhase, barriers + (uint)(stage * 8), (uint)((block / {Fp8GemmShape.Stages}) & 1)); // the stage's parity flips with each use");
                        w.WriteLine($"ulong a = WarpGroupMma.Swizzled(stageBase + (uint)(warpGroup * {64 * T})), b = WarpGroupMma.Swizzled(stageBase + {T * T}u);");
                        for (int i = 0; i < intervals; i++)
                        {
                            string offset = i == 0 ? string.Empty : $" + {i * g.Precision.PromotionInterval / 16}ul";
                            w.WriteLine($"CudaAsm.Emit(GemmInterval, a{offset}, b{offset});");
                            if (i == intervals - 1)
                            {
                                w.WriteLine("if (warpGroup == 0) CudaAsm.Emit(\"bar.sync 2, 128;\"); // this warp group's four warps are done with the stage");
                                w.WriteLine("else CudaAsm.Emit(\"bar.sync 3, 128;\");");
                                w.WriteLine("if ((thread & 127) == 0)");
                                using (w.WriteBraces())
                                {
                                    w.WriteLine("CudaAsm.Emit(\"atom.acq_rel.cta.shared::cta.add.u32 %0, [%1], 1;\", out uint before, counters + (uint)(stage * 4));");
                                    w.WriteLine($"if ((before & 1) == 1 && block + {Fp8GemmShape.Stages} < blocks) IssueGemmStage(maps, stageBase, barriers + (uint)(stage * 8), rowTile * {T}, columnTile * {T}, (block + {Fp8GemmShape.Stages}) * {T}); // the second to finish refills it");
                                }

                                w.WriteLine();
                            }

                            w.WriteLine("CudaAsm.Emit(GemmPromote, scaleLow, scaleHigh);");
                        }
                    }

                    w.WriteLine();
                    w.WriteLine($"ulong outLow = (ulong)output + (((ulong)row * (ulong)n) + (ulong)((columnTile * {T}) + (2 * t))) * 4;");
                    w.WriteLine("CudaAsm.Emit(StoreGemmTile, outLow, outLow + ((ulong)n * 32), row < m ? 1 : 0, row + 8 < m ? 1 : 0);");
                }

                w.WriteLine();
                w.WriteSummary($"Arms barrier for a stage's {Fp8GemmShape.StageBytes} bytes and copies the k-block at column k of a's rows row … row + {T - 1} and of w's rows column … column + {T - 1}.");
                w.WriteLine("[System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]");
                w.WriteLine("private static void IssueGemmStage(long maps, uint target, uint barrier, int row, int column, int k)");
                using (w.WriteBraces())
                {
                    w.WriteLine($"CudaAsm.Emit(\"mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], {Fp8GemmShape.StageBytes};\", barrier);");
                    w.WriteLine("CudaAsm.Emit(\"cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\", target, (ulong)maps, k, row, barrier);");
                    w.WriteLine($"CudaAsm.Emit(\"cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {{%2, %3}}], [%4];\", target + {T * T}u, (ulong)maps + {TensorMapBytes}ul, k, column, barrier);");
                }

                w.WriteLine();
            }

            /// <summary>The same product in plain arithmetic, for devices without warp-group MMA (and CI, on PoCL).</summary>
            private void WriteFp8GemmPortable(IndentedWriter w)
            {
                const int T = Fp8GemmShape.Tile;
                w.WriteLine("/// <summary>");
                w.WriteLine($"/// Cuda.Fp8Gemm's product in plain arithmetic, for devices without warp-group MMA: output[i, j] = Σ over k-blocks b of");
                w.WriteLine($"/// (Σ_{{k in b}} a[i, k] · w[j, k]) · activationScales[i, b] · weightScales[j / {T}, b], the E4M3 codes decoded to FP32.");
                w.WriteLine("/// Launch: 1-D, groups of 256, one thread per output element, j fastest. FP32 throughout.");
                w.WriteLine("/// </summary>");
                w.WriteLine("public static void Fp8Gemm(ArrayView<byte> activations, ArrayView<float> activationScales, ArrayView<byte> weight, ArrayView<float> weightScales, ArrayView<float> output, int m, int n, int k)");
                using (w.WriteBraces())
                {
                    w.WriteLine("long index = ((long)Grid.IdxX * Group.DimX) + Group.IdxX;");
                    w.WriteLine("if (index >= (long)m * n) return; // the grid is rounded up to whole groups");
                    w.WriteLine($"int i = (int)(index / n), j = (int)(index % n), blocks = k / {T};");
                    w.WriteLine("long aRow = (long)i * k, wRow = (long)j * k;");
                    w.WriteLine("float sum = 0f;");
                    w.WriteLine("for (int b = 0; b < blocks; b++)");
                    using (w.WriteBraces())
                    {
                        w.WriteLine("float dot = 0f;");
                        w.WriteLine($"for (int x = b * {T}; x < (b + 1) * {T}; x++) dot += E4M3.Decode(activations[aRow + x]) * E4M3.Decode(weight[wRow + x]);");
                        w.WriteLine($"sum += dot * activationScales[((long)i * blocks) + b] * weightScales[((long)(j / {T}) * blocks) + b];");
                    }

                    w.WriteLine();
                    w.WriteLine("output[index] = sum;");
                }

                w.WriteLine();
            }
        }
    }
}
