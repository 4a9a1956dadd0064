using System.Linq;
using ModelCompiler.Planning;
using static ModelCompiler.Generators.Emit.Literals;

namespace ModelCompiler.Generators.Emit
{
    internal static partial class KernelEmitter
    {
        /// <summary>Absorbed MLA decoding over the latent cache (FlashMLA's problem): tensor cores on CUDA, plain loops elsewhere.</summary>
        private sealed partial class KernelSet
        {
            private const string ScaleLog2Comment = "softmax scale · log2(e): scores in base 2, so exp is one ex2";

            /// <summary>Which (sequence, split, head group) a group of a batch × splits × <paramref name="headGroups"/> launch takes.</summary>
            private static void WriteGroupIndex(IndentedWriter w, int headGroups)
            {
                w.WriteLine("// Which sequence, split and heads this group takes; which role this thread has.");
                w.WriteLine("int groupIndex = Grid.IdxX;");
                w.WriteLine($"int headGroup = groupIndex % {headGroups};");
                w.WriteLine($"int split = groupIndex / {headGroups} % splits;");
                w.WriteLine($"int sequence = groupIndex / {headGroups} / splits;");
            }

            /// <summary>The split's chunks [firstChunk, endChunk) of its sequence's ⌈length / chunk⌉ (an empty range past them).</summary>
            private static void WriteChunkRange(IndentedWriter w, int chunk)
            {
                w.WriteLine("int length = Math.Min(lengths[sequence], capacity); // never read past the cache");
                w.WriteLine($"int chunks = (length + {chunk - 1}) / {chunk};");
                w.WriteLine("int perSplit = (chunks + splits - 1) / splits;");
                w.WriteLine("int firstChunk = split * perSplit;");
                w.WriteLine("int endChunk = Math.Min(chunks, firstChunk + perSplit);");
            }

            private void WriteMlaParameters(IndentedWriter w)
            {
                var a = Attention;
                w.WriteLine($"/// <param name=\"queryLatent\">q̃ = q_nope · W_UK per head [batch, {a.Heads}, {a.KeyValueLoraRank}] bf16 (raw 16-bit values).</param>");
                w.WriteLine($"/// <param name=\"queryRope\">Rotated q_pe [batch, {a.Heads}, {a.QkRopeHeadDim}] bf16.</param>");
                w.WriteLine($"/// <param name=\"latentCache\">Normalised c_KV of every cached token [batch, capacity, {a.KeyValueLoraRank}] bf16.</param>");
                w.WriteLine($"/// <param name=\"ropeCache\">Rotated k_pe of every cached token [batch, capacity, {a.QkRopeHeadDim}] bf16.</param>");
                w.WriteLine("/// <param name=\"lengths\">Cached tokens of each sequence [batch] (at most capacity).</param>");
                w.WriteLine($"/// <param name=\"output\">Softmax-normalised output of each split [batch, splits, {a.Heads}, {a.KeyValueLoraRank}] FP32.</param>");
                w.WriteLine($"/// <param name=\"logSumExp\">Natural log-sum-exp of each split's scaled scores [batch, splits, {a.Heads}] (−∞ for an empty split).</param>");
                w.WriteLine("/// <param name=\"capacity\">Tokens the cache holds per sequence.</param>");
                w.WriteLine("/// <param name=\"splits\">Splits per sequence: split s takes 32-token chunks [s·c, s·c + c) with c = ⌈⌈length / 32⌉ / splits⌉.</param>");
                w.WriteLine("public static void MlaDecode(ArrayView<ushort> queryLatent, ArrayView<ushort> queryRope, ArrayView<ushort> latentCache, ArrayView<ushort> ropeCache,");
                w.WriteLine("    ArrayView<int> lengths, ArrayView<float> output, ArrayView<float> logSumExp, int capacity, int splits)");
            }

            private void WriteMlaCuda(IndentedWriter w)
            {
                var m = _mla;
                var a = Attention;
                int kSteps = m.KStepsPerWarp;
                int nTiles = MlaShape.Chunk / 8;
                int columnPairs = m.OutputColumnsPerWarp / 16;
                int headGroups = a.Heads / m.HeadsPerGroup;
                int rw = m.RowWords;
                int items = MlaShape.Chunk * (m.ScoreDims / 8);
                w.WriteLine("/// <summary>");
                w.WriteLine("/// Absorbed MLA decoding for a batch of sequences of their own lengths, on tensor cores: for each head h,");
                w.WriteLine("/// score_j = (q̃_h · c_j + q_pe,h · k_pe,j) · SoftmaxScale, p = softmax(score), ō_h = Σ_j p_j · c_j (W_UV is applied after).");
                w.WriteLine($"/// Launch: one group of {m.Threads} threads ({m.Warps} warps) per (sequence, split, {m.HeadsPerGroup} heads): batch × splits × {headGroups} groups,");
                w.WriteLine($"/// {m.SharedBytes} bytes of dynamic shared memory. Each cached chunk of {MlaShape.Chunk} tokens is staged once in shared memory");
                w.WriteLine($"/// ({rw * 4} bytes per token: {m.ScoreDims} bf16 plus 16 bytes of padding, so fragment loads hit 32 distinct banks) and read by all");
                w.WriteLine($"/// {m.HeadsPerGroup} heads. Per m-tile of 16 heads, four warps split the score's {m.ScoreDims} dimensions ({kSteps} k-steps of");
                w.WriteLine($"/// mma.m16n8k16 each, their query fragments held in registers for the whole kernel) and add their partial scores in shared");
                w.WriteLine($"/// memory; warp w then owns tokens [8w, 8w + 8) for the online softmax (running max and sum, base 2) and latent columns");
                w.WriteLine($"/// [{m.OutputColumnsPerWarp}w, {m.OutputColumnsPerWarp}w + {m.OutputColumnsPerWarp}) of ō ({m.OutputColumnsPerWarp / 2} FP32 accumulators per thread). P·C reads C's bf16 pairs");
                w.WriteLine("/// along the latent axis and regroups them along the token axis with prmt, so that one 32-bit load serves two mma tiles.");
                w.WriteLine("/// Precision: bf16 operands, FP32 accumulation and softmax; p rounded to bf16 for the second product, as FlashMLA does.");
                w.WriteLine("/// </summary>");
                WriteMlaParameters(w);
                using (w.WriteBraces())
                {
                    WriteGroupIndex(w, headGroups);
                    w.WriteLine("int warp = Warp.WarpIdx, lane = Warp.LaneIdx;");
                    w.WriteLine("int g = lane >> 2, t = lane & 3; // mma fragment coordinates");
                    w.WriteLine("int mTile = warp >> 2, part = warp & 3;");
                    w.WriteLine($"int head0 = headGroup * {m.HeadsPerGroup} + mTile * 16;");
                    WriteChunkRange(w, MlaShape.Chunk);
                    w.WriteLine();
                    w.WriteLine("// Shared memory: the chunk's keys, the four partial score tiles per m-tile, p as bf16, row statistics.");
                    w.WriteLine("var shared = SharedMemory.GetDynamic<uint>();");
                    w.WriteLine($"var keys = shared.SubView(0, {MlaShape.Chunk * rw});");
                    w.WriteLine("var keyQuads = keys.Cast<Float4>();");
                    w.WriteLine($"var partials = shared.SubView({m.KeyBytes / 4}, {m.PartialBytes / 4}).Cast<float>();");
                    w.WriteLine($"var probabilities = shared.SubView({(m.KeyBytes + m.PartialBytes) / 4}, {m.PBytes / 4});");
                    w.WriteLine($"var rowStats = shared.SubView({(m.KeyBytes + m.PartialBytes + m.PBytes) / 4}, {m.MaxBytes / 4}).Cast<float>();");
                    w.WriteLine();
                    w.WriteLine($"// This warp's query fragments: k-steps {kSteps}·part … {kSteps}·part + {kSteps - 1} of the {m.ScoreDims} score dimensions, rows head0 + g and head0 + g + 8.");
                    w.WriteLine("var latentWords = queryLatent.Cast<uint>();");
                    w.WriteLine("var ropeWords = queryRope.Cast<uint>();");
                    w.WriteLine($"long rowLow = (long)sequence * {a.Heads} + head0 + g, rowHigh = rowLow + 8;");
                    w.WriteLine($"int kBase = part * {kSteps * 16};");
                    for (int j = 0; j < kSteps; j++)
                    {
                        w.WriteLine($"uint a{j}0 = QueryPair(latentWords, ropeWords, rowLow, {Plus("kBase", j * 16)} + 2 * t), a{j}1 = QueryPair(latentWords, ropeWords, rowHigh, {Plus("kBase", j * 16)} + 2 * t);");
                        w.WriteLine($"uint a{j}2 = QueryPair(latentWords, ropeWords, rowLow, kBase + {j * 16 + 8} + 2 * t), a{j}3 = QueryPair(latentWords, ropeWords, rowHigh, kBase + {j * 16 + 8} + 2 * t);");
                    }

                    w.WriteLine();
                    w.WriteLine($"// Output accumulators: 16 rows × {m.OutputColumnsPerWarp} columns as {columnPairs * 2} mma tiles; running max and sum of rows g and g + 8.");
                    for (int n = 0; n < columnPairs * 2; n++) w.WriteLine($"float o{n}0 = 0f, o{n}1 = 0f, o{n}2 = 0f, o{n}3 = 0f;");
                    w.WriteLine("float maxLow = float.NegativeInfinity, maxHigh = float.NegativeInfinity, sumLow = 0f, sumHigh = 0f;");
                    w.WriteLine($"int statsBase = mTile * 64; // rowStats[(mTile·4 + warp part)·16 + row]");
                    w.WriteLine();
                    w.WriteLine("var latentQuads = latentCache.Cast<Float4>();");
                    w.WriteLine("var ropeQuads = ropeCache.Cast<Float4>();");
                    int latentPieces = a.KeyValueLoraRank / 8, ropePieces = a.QkRopeHeadDim / 8;
                    int latentLoads = MlaShape.Chunk * latentPieces / m.Threads, ropeLoads = MlaShape.Chunk * ropePieces / m.Threads;
                    int latentStep = m.Threads / latentPieces, ropeStep = m.Threads / ropePieces;
                    bool beforeScores = m.PrefetchBeforeScores;
                    w.WriteLine($"// Staging: thread i moves 16-byte piece i % {latentPieces} of the latent row of {latentLoads} tokens and piece i % {ropePieces} of the rotary");
                    w.WriteLine($"// row of {ropeLoads}; all loads are issued before any store (no branch between them), rows past the length clamped to a valid");
                    w.WriteLine("// row on load and zeroed on store.");
                    w.WriteLine($"int latentPiece = Group.IdxX % {latentPieces}, latentRow = Group.IdxX / {latentPieces};");
                    w.WriteLine($"int ropePiece = Group.IdxX % {ropePieces}, ropeRow = Group.IdxX / {ropePieces};");
                    w.WriteLine("long cacheBase = (long)sequence * capacity;");
                    void Loads(string chunk, bool declare)
                    {
                        string type = declare ? "Float4 " : string.Empty;
                        for (int u = 0; u < latentLoads; u++)
                        {
                            w.WriteLine($"{type}l{u} = latentQuads[(cacheBase + Math.Max(Math.Min({chunk} * {MlaShape.Chunk} + {Plus("latentRow", u * latentStep)}, length - 1), 0)) * {latentPieces} + latentPiece];");
                        }

                        for (int u = 0; u < ropeLoads; u++)
                        {
                            w.WriteLine($"{type}r{u} = ropeQuads[(cacheBase + Math.Max(Math.Min({chunk} * {MlaShape.Chunk} + {Plus("ropeRow", u * ropeStep)}, length - 1), 0)) * {ropePieces} + ropePiece];");
                        }
                    }

                    void Stores(string chunk)
                    {
                        w.WriteLine($"var latentSlot = keyQuads.SubView(latentRow * {rw / 4} + latentPiece, {MlaShape.Chunk * rw / 4} - (latentRow * {rw / 4} + latentPiece));");
                        w.WriteLine($"var ropeSlot = keyQuads.SubView(ropeRow * {rw / 4} + {latentPieces} + ropePiece, {MlaShape.Chunk * rw / 4} - (ropeRow * {rw / 4} + {latentPieces} + ropePiece));");
                        w.WriteLine($"int valid = length - {chunk} * {MlaShape.Chunk}; // rows at or past this are zeros");
                        for (int u = 0; u < latentLoads; u++)
                        {
                            w.WriteLine($"latentSlot[{u * latentStep * rw / 4}] = {Plus("latentRow", u * latentStep)} < valid ? l{u} : new Float4(0f);");
                        }

                        for (int u = 0; u < ropeLoads; u++)
                        {
                            w.WriteLine($"ropeSlot[{u * ropeStep * rw / 4}] = {Plus("ropeRow", u * ropeStep)} < valid ? r{u} : new Float4(0f);");
                        }
                    }

                    w.WriteLine(beforeScores
                        ? "// Software pipeline: chunk c + 1's loads are issued before chunk c's scores and wait in registers."
                        : "// Software pipeline: chunk c + 1's loads are issued once chunk c's scores are stored (beside the score accumulators they");
                    if (!beforeScores) w.WriteLine("// would not fit in registers) and wait there through chunk c's softmax and p · c.");
                    Loads("firstChunk", declare: true); // clamped to row 0 when the split is empty

                    w.WriteLine();
                    w.WriteLine("for (int chunk = firstChunk; chunk < endChunk; chunk++)");
                    using (w.WriteBraces())
                    {
                        w.WriteLine($"int token0 = chunk * {MlaShape.Chunk};");
                        w.WriteLine("Group.Barrier(); // the previous chunk's keys and probabilities are no longer read");
                        using (w.WriteBraces())
                        {
                            Stores("chunk");
                        }

                        w.WriteLine("Group.Barrier();");
                        void PrefetchNext()
                        {
                            w.WriteLine("if (chunk + 1 < endChunk) // the next chunk's loads, in flight while this one is computed");
                            using (w.WriteBraces())
                            {
                                Loads("(chunk + 1)", declare: false);
                            }
                        }

                        if (beforeScores) PrefetchNext();
                        w.WriteLine();
                        w.WriteLine($"// Partial scores of the m-tile's 16 heads × {MlaShape.Chunk} tokens over this warp's {kSteps} k-steps.");
                        for (int n = 0; n < nTiles; n++) w.WriteLine($"float s{n}0 = 0f, s{n}1 = 0f, s{n}2 = 0f, s{n}3 = 0f;");
                        w.WriteLine($"var keyLane = keys.SubView(g * {rw} + (kBase >> 1) + t, {MlaShape.Chunk * rw} - (g * {rw} + (kBase >> 1) + t));");
                        for (int j = 0; j < kSteps; j++)
                        {
                            for (int n = 0; n < nTiles; n++)
                            {
                                w.WriteLine($"TensorCore.MmaBf16(ref s{n}0, ref s{n}1, ref s{n}2, ref s{n}3, a{j}0, a{j}1, a{j}2, a{j}3, keyLane[{(n * 8 * rw) + (j * 8)}], keyLane[{(n * 8 * rw) + (j * 8) + 4}]);");
                            }
                        }

                        w.WriteLine($"int partialBase = (mTile * 4 + part) * {16 * m.PartialStride} + g * {m.PartialStride} + 2 * t;");
                        w.WriteLine($"var partialLane = partials.SubView(partialBase, {m.PartialBytes / 4} - partialBase);");
                        for (int n = 0; n < nTiles; n++)
                        {
                            w.WriteLine($"partialLane[{n * 8}] = s{n}0; partialLane[{n * 8 + 1}] = s{n}1; partialLane[{(8 * m.PartialStride) + (n * 8)}] = s{n}2; partialLane[{(8 * m.PartialStride) + (n * 8) + 1}] = s{n}3;");
                        }

                        if (!beforeScores) PrefetchNext();
                        w.WriteLine("Group.Barrier();");
                        w.WriteLine();
                        w.WriteLine("// This warp's tokens [8·part, 8·part + 8): add the four partials, scale, mask past the length.");
                        w.WriteLine("int column = part * 8 + 2 * t;");
                        w.WriteLine($"int sumBase = mTile * {4 * 16 * m.PartialStride} + g * {m.PartialStride} + column;");
                        w.WriteLine($"var sumLane = partials.SubView(sumBase, {m.PartialBytes / 4} - sumBase);");
                        string Sum(int rowOffset, int offset) => string.Join(" + ", Enumerable.Range(0, 4).Select(q => $"sumLane[{(q * 16 * m.PartialStride) + (rowOffset * m.PartialStride) + offset}]"));
                        string scaleLog2 = Float(RopeMath.SoftmaxScale(_spec) * 1.4426950408889634);
                        w.WriteLine($"float x0 = ({Sum(0, 0)}) * {scaleLog2}; // {ScaleLog2Comment}");
                        w.WriteLine($"float x1 = ({Sum(0, 1)}) * {scaleLog2};");
                        w.WriteLine($"float x2 = ({Sum(8, 0)}) * {scaleLog2};");
                        w.WriteLine($"float x3 = ({Sum(8, 1)}) * {scaleLog2};");

                        w.WriteLine("if (token0 + column >= length) { x0 = float.NegativeInfinity; x2 = float.NegativeInfinity; } // past the sequence");
                        w.WriteLine("if (token0 + column + 1 >= length) { x1 = float.NegativeInfinity; x3 = float.NegativeInfinity; }");
                        w.WriteLine();
                        w.WriteLine("// Row maxima over the chunk: the warp's 8 tokens (4 lanes), then the m-tile's four warps.");
                        w.WriteLine("float chunkLow = MathF.Max(x0, x1), chunkHigh = MathF.Max(x2, x3);");
                        WarpAllReduce(w, "chunkLow", 4, max: true);
                        WarpAllReduce(w, "chunkHigh", 4, max: true);
                        w.WriteLine("if (t == 0) { rowStats[statsBase + part * 16 + g] = chunkLow; rowStats[statsBase + part * 16 + g + 8] = chunkHigh; }");
                        w.WriteLine("Group.Barrier();");
                        w.WriteLine("float newLow = MathF.Max(maxLow, MathF.Max(MathF.Max(rowStats[statsBase + g], rowStats[statsBase + 16 + g]), MathF.Max(rowStats[statsBase + 32 + g], rowStats[statsBase + 48 + g])));");
                        w.WriteLine("float newHigh = MathF.Max(maxHigh, MathF.Max(MathF.Max(rowStats[statsBase + 8 + g], rowStats[statsBase + 24 + g]), MathF.Max(rowStats[statsBase + 40 + g], rowStats[statsBase + 56 + g])));");
                        w.WriteLine("float alphaLow = FastMath.Exp2(maxLow - newLow), alphaHigh = FastMath.Exp2(maxHigh - newHigh); // 0 on the first chunk (−∞ − finite)");
                        w.WriteLine("maxLow = newLow;");
                        w.WriteLine("maxHigh = newHigh;");
                        w.WriteLine("float p0 = FastMath.Exp2(x0 - newLow), p1 = FastMath.Exp2(x1 - newLow), p2 = FastMath.Exp2(x2 - newHigh), p3 = FastMath.Exp2(x3 - newHigh);");
                        w.WriteLine("sumLow = sumLow * alphaLow + p0 + p1;");
                        w.WriteLine("sumHigh = sumHigh * alphaHigh + p2 + p3;");
                        w.WriteLine($"probabilities[(mTile * 16 + g) * {m.PWords} + part * 4 + t] = Bf16.Pack(p0, p1);");
                        w.WriteLine($"probabilities[(mTile * 16 + g + 8) * {m.PWords} + part * 4 + t] = Bf16.Pack(p2, p3);");
                        for (int n = 0; n < columnPairs * 2; n++)
                        {
                            w.WriteLine($"o{n}0 *= alphaLow; o{n}1 *= alphaLow; o{n}2 *= alphaHigh; o{n}3 *= alphaHigh;");
                        }

                        w.WriteLine("Group.Barrier();");
                        w.WriteLine();
                        w.WriteLine($"// ō[16 × {m.OutputColumnsPerWarp}] += p[16 × {MlaShape.Chunk}] · C[{MlaShape.Chunk} × {m.OutputColumnsPerWarp}]. Tile 2i's column g is latent column {m.OutputColumnsPerWarp}·part + 16i + 2g, tile 2i+1's is the next one:");
                        w.WriteLine("// a 32-bit key word holds both, and prmt pairs two tokens' halves into each tile's B fragment.");
                        w.WriteLine($"int pRow = (mTile * 16 + g) * {m.PWords} + t;");
                        w.WriteLine($"var pLane = probabilities.SubView(pRow, {m.PBytes / 4} - pRow);");
                        w.WriteLine($"int cWord = 2 * t * {rw} + part * {m.OutputColumnsPerWarp / 2} + g;");
                        w.WriteLine($"var cLane = keys.SubView(cWord, {MlaShape.Chunk * rw} - cWord);");
                        for (int kk = 0; kk < MlaShape.Chunk / 16; kk++)
                        {
                            w.WriteLine($"uint pa{kk}0 = pLane[{kk * 8}], pa{kk}1 = pLane[{8 * m.PWords + kk * 8}], pa{kk}2 = pLane[{kk * 8 + 4}], pa{kk}3 = pLane[{8 * m.PWords + kk * 8 + 4}];");
                            for (int i = 0; i < columnPairs; i++)
                            {
                                string Word(int token) => $"cLane[{((kk * 16) + token) * rw + (i * 8)}]";
                                w.WriteLine($"uint w{kk}{i}0 = {Word(0)}, w{kk}{i}1 = {Word(1)}, w{kk}{i}2 = {Word(8)}, w{kk}{i}3 = {Word(9)};");
                                w.WriteLine($"TensorCore.MmaBf16(ref o{2 * i}0, ref o{2 * i}1, ref o{2 * i}2, ref o{2 * i}3, pa{kk}0, pa{kk}1, pa{kk}2, pa{kk}3, TensorCore.Permute(w{kk}{i}0, w{kk}{i}1, 0x5410), TensorCore.Permute(w{kk}{i}2, w{kk}{i}3, 0x5410));");
                                w.WriteLine($"TensorCore.MmaBf16(ref o{2 * i + 1}0, ref o{2 * i + 1}1, ref o{2 * i + 1}2, ref o{2 * i + 1}3, pa{kk}0, pa{kk}1, pa{kk}2, pa{kk}3, TensorCore.Permute(w{kk}{i}0, w{kk}{i}1, 0x7632), TensorCore.Permute(w{kk}{i}2, w{kk}{i}3, 0x7632));");
                            }
                        }
                    }

                    w.WriteLine();
                    w.WriteLine("// Row sums: the four lanes of a row, then the m-tile's four warps.");
                    WarpAllReduce(w, "sumLow", 4, max: false);
                    WarpAllReduce(w, "sumHigh", 4, max: false);
                    w.WriteLine("Group.Barrier();");
                    w.WriteLine("if (t == 0) { rowStats[statsBase + part * 16 + g] = sumLow; rowStats[statsBase + part * 16 + g + 8] = sumHigh; }");
                    w.WriteLine("Group.Barrier();");
                    w.WriteLine("float totalLow = rowStats[statsBase + g] + rowStats[statsBase + 16 + g] + rowStats[statsBase + 32 + g] + rowStats[statsBase + 48 + g];");
                    w.WriteLine("float totalHigh = rowStats[statsBase + 8 + g] + rowStats[statsBase + 24 + g] + rowStats[statsBase + 40 + g] + rowStats[statsBase + 56 + g];");
                    w.WriteLine("float inverseLow = totalLow > 0f ? 1f / totalLow : 0f, inverseHigh = totalHigh > 0f ? 1f / totalHigh : 0f; // an empty split writes zeros");
                    w.WriteLine();
                    w.WriteLine($"// Write ō: lane (g, t) holds latent columns {m.OutputColumnsPerWarp}·part + 16i + 4t … + 3 of rows g and g + 8, one 16-byte store each.");
                    w.WriteLine("var outputQuads = output.Cast<Float4>();");
                    w.WriteLine($"long outLow = (((long)sequence * splits + split) * {a.Heads} + head0 + g) * {a.KeyValueLoraRank / 4} + part * {m.OutputColumnsPerWarp / 4} + t;");
                    w.WriteLine($"long outHigh = outLow + {8 * a.KeyValueLoraRank / 4};");
                    for (int i = 0; i < columnPairs; i++)
                    {
                        w.WriteLine($"outputQuads[{Plus("outLow", i * 4)}] = new Float4(o{2 * i}0 * inverseLow, o{2 * i + 1}0 * inverseLow, o{2 * i}1 * inverseLow, o{2 * i + 1}1 * inverseLow);");
                        w.WriteLine($"outputQuads[{Plus("outHigh", i * 4)}] = new Float4(o{2 * i}2 * inverseHigh, o{2 * i + 1}2 * inverseHigh, o{2 * i}3 * inverseHigh, o{2 * i + 1}3 * inverseHigh);");
                    }

                    w.WriteLine("if (part == 0 && t == 0)");
                    using (w.WriteBraces())
                    {
                        w.WriteLine($"long at = ((long)sequence * splits + split) * {a.Heads} + head0 + g;");
                        w.WriteLine("logSumExp[at] = totalLow > 0f ? (maxLow + FastMath.Log2(totalLow)) * 0.6931472f : float.NegativeInfinity; // back to natural log");
                        w.WriteLine("logSumExp[at + 8] = totalHigh > 0f ? (maxHigh + FastMath.Log2(totalHigh)) * 0.6931472f : float.NegativeInfinity;");
                    }
                }

                w.WriteLine();
                w.WriteSummary("The bf16 pair of query dimensions (dim, dim + 1) of one row: from q̃ below d_c, from q_pe above.");
                w.WriteLine("[System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]");
                w.WriteLine("private static uint QueryPair(ArrayView<uint> latent, ArrayView<uint> rope, long row, int dim) =>");
                w.WriteLine($"    dim < {a.KeyValueLoraRank} ? latent[row * {a.KeyValueLoraRank / 2} + (dim >> 1)] : rope[row * {a.QkRopeHeadDim / 2} + ((dim - {a.KeyValueLoraRank}) >> 1)];");
                w.WriteLine();
            }

            private void WriteMlaPortable(IndentedWriter w)
            {
                var a = Attention;
                int dims = a.KeyValueLoraRank, rope = a.QkRopeHeadDim;
                int perThread = (dims + 127) / 128;
                w.WriteLine("/// <summary>");
                w.WriteLine("/// Absorbed MLA decoding for a batch of sequences of their own lengths, in plain arithmetic: for each head h,");
                w.WriteLine("/// score_j = (q̃_h · c_j + q_pe,h · k_pe,j) · SoftmaxScale, p = softmax(score), ō_h = Σ_j p_j · c_j (W_UV is applied after).");
                w.WriteLine($"/// Launch: one group of 128 threads per (sequence, split, head): batch × splits × {a.Heads} groups. The query sits in shared memory;");
                w.WriteLine($"/// per block of 128 tokens each thread scores one token, the block's max and sum go through a shared-memory tree (online");
                w.WriteLine($"/// softmax), then each thread accumulates its {perThread} latent column{(perThread > 1 ? "s" : string.Empty)} over the block. FP32 throughout; splits as in the CUDA kernel.");
                w.WriteLine("/// </summary>");
                WriteMlaParameters(w);
                using (w.WriteBraces())
                {
                    w.WriteLine("int groupIndex = Grid.IdxX;");
                    w.WriteLine($"int head = groupIndex % {a.Heads};");
                    w.WriteLine($"int split = groupIndex / {a.Heads} % splits;");
                    w.WriteLine($"int sequence = groupIndex / {a.Heads} / splits;");
                    w.WriteLine("int thread = Group.IdxX;");
                    w.WriteLine("int length = Math.Min(lengths[sequence], capacity); // never read past the cache");
                    w.WriteLine($"int chunks = (length + {MlaShape.Chunk - 1}) / {MlaShape.Chunk};");
                    w.WriteLine("int perSplit = (chunks + splits - 1) / splits;");
                    w.WriteLine($"int begin = Math.Min(length, split * perSplit * {MlaShape.Chunk});");
                    w.WriteLine($"int end = Math.Min(length, begin + perSplit * {MlaShape.Chunk});");
                    w.WriteLine();
                    w.WriteLine("// The query, in FP32, shared by the group.");
                    w.WriteLine($"var query = SharedMemory.Allocate<float>({dims + rope});");
                    w.WriteLine($"long queryRow = (long)sequence * {a.Heads} + head;");
                    w.WriteLine($"for (int d = thread; d < {dims}; d += 128) query[d] = Bf16.ToFloat(queryLatent[queryRow * {dims} + d]);");
                    w.WriteLine($"for (int d = thread; d < {rope}; d += 128) query[{dims} + d] = Bf16.ToFloat(queryRope[queryRow * {rope} + d]);");
                    w.WriteLine("var reduce = SharedMemory.Allocate<float>(128);");
                    w.WriteLine("var weights = SharedMemory.Allocate<float>(128);");
                    w.WriteLine("Group.Barrier();");
                    for (int i = 0; i < perThread; i++) w.WriteLine($"float o{i} = 0f;");
                    w.WriteLine("float runningMax = float.NegativeInfinity, runningSum = 0f;");
                    w.WriteLine("for (int block = begin; block < end; block += 128)");
                    using (w.WriteBraces())
                    {
                        w.WriteLine("// Score one token per thread.");
                        w.WriteLine("int token = block + thread;");
                        w.WriteLine("float score = float.NegativeInfinity;");
                        w.WriteLine("if (token < end)");
                        using (w.WriteBraces())
                        {
                            w.WriteLine("long cached = (long)sequence * capacity + token;");
                            w.WriteLine("float dot = 0f;");
                            w.WriteLine($"for (int d = 0; d < {dims}; d++) dot += query[d] * Bf16.ToFloat(latentCache[cached * {dims} + d]);");
                            w.WriteLine($"for (int d = 0; d < {rope}; d++) dot += query[{dims} + d] * Bf16.ToFloat(ropeCache[cached * {rope} + d]);");
                            w.WriteLine("score = dot * SoftmaxScale;");
                        }

                        w.WriteLine();
                        w.WriteLine("// The block's max (shared-memory tree), then the online-softmax update.");
                        w.WriteLine("reduce[thread] = score;");
                        w.WriteLine("Group.Barrier();");
                        for (int stride = 64; stride >= 1; stride /= 2)
                        {
                            w.WriteLine($"if (thread < {stride}) reduce[thread] = MathF.Max(reduce[thread], reduce[thread + {stride}]);");
                            w.WriteLine("Group.Barrier();");
                        }

                        w.WriteLine("float newMax = MathF.Max(runningMax, reduce[0]);");
                        w.WriteLine("float alpha = MathF.Exp(runningMax - newMax); // 0 on the first block");
                        w.WriteLine("float p = token < end ? MathF.Exp(score - newMax) : 0f;");
                        w.WriteLine("weights[thread] = p;");
                        w.WriteLine("Group.Barrier();");
                        w.WriteLine("reduce[thread] = p;");
                        w.WriteLine("Group.Barrier();");
                        for (int stride = 64; stride >= 1; stride /= 2)
                        {
                            w.WriteLine($"if (thread < {stride}) reduce[thread] += reduce[thread + {stride}];");
                            w.WriteLine("Group.Barrier();");
                        }

                        w.WriteLine("runningSum = runningSum * alpha + reduce[0];");
                        w.WriteLine("runningMax = newMax;");
                        w.WriteLine();
                        w.WriteLine("// Accumulate this thread's latent columns over the block's tokens.");
                        w.WriteLine("int count = Math.Min(128, end - block);");
                        for (int i = 0; i < perThread; i++)
                        {
                            bool guarded = (i + 1) * 128 > dims;
                            w.WriteLine($"o{i} *= alpha;");
                            if (guarded) w.WriteLine($"if ({Plus("thread", i * 128)} < {dims})");
                            w.WriteLine($"{(guarded ? "    " : string.Empty)}for (int j = 0; j < count; j++) o{i} += weights[j] * Bf16.ToFloat(latentCache[((long)sequence * capacity + block + j) * {dims} + {Plus("thread", i * 128)}]);");
                        }

                        w.WriteLine("Group.Barrier(); // weights and reduce are rewritten by the next block");
                    }

                    w.WriteLine();
                    w.WriteLine("float inverse = runningSum > 0f ? 1f / runningSum : 0f; // an empty split writes zeros");
                    w.WriteLine($"long outRow = (((long)sequence * splits + split) * {a.Heads} + head) * {dims};");
                    for (int i = 0; i < perThread; i++)
                    {
                        bool guarded = (i + 1) * 128 > dims;
                        w.WriteLine($"{(guarded ? $"if ({Plus("thread", i * 128)} < {dims}) " : string.Empty)}output[outRow + {Plus("thread", i * 128)}] = o{i} * inverse;");
                    }

                    w.WriteLine($"if (thread == 0) logSumExp[((long)sequence * splits + split) * {a.Heads} + head] = runningSum > 0f ? runningMax + MathF.Log(runningSum) : float.NegativeInfinity;");
                }

                w.WriteLine();
            }
        }
    }
}
