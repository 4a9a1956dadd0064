using static ModelCompiler.Generators.Emit.Literals;

namespace ModelCompiler.Generators.Emit
{
    internal static partial class KernelEmitter
    {
        /// <summary>Kernels without reductions, the same on every backend: RoPE, SwiGLU, weight dequantisation, the MLA split combine.</summary>
        private sealed partial class KernelSet
        {
            /// <summary>Two pairs per RoPE thread, through 16-byte accesses, where every q_pe and k_pe row starts on one.</summary>
            private bool RopeByQuads => Attention.QkRopeHeadDim % 4 == 0 && Attention.QkNopeHeadDim % 4 == 0 && Attention.QkHeadDim % 4 == 0;

            /// <summary>RoPE threads per q_pe or k_pe row.</summary>
            private int RopeThreadsPerRow => Attention.QkRopeHeadDim / (RopeByQuads ? 4 : 2);

            public void WriteNeutralKernels(IndentedWriter w)
            {
                var a = Attention;
                int pairs = a.QkRopeHeadDim / 2;
                bool quads = RopeByQuads;
                int perRow = RopeThreadsPerRow;
                w.WriteLine("/// <summary>");
                w.WriteLine("/// Interleaved RoPE in place on each head's q_pe (the last RopeHeadDim values of its QueryHeadDim) and the shared k_pe:");
                w.WriteLine("/// pair i = (x[2i], x[2i+1]) → (x[2i]·cos − x[2i+1]·sin, x[2i]·sin + x[2i+1]·cos) at the token's position, as DeepSeek's");
                w.WriteLine("/// apply_rotary_emb multiplies by freqs_cis (the YaRN-corrected angles are in the tables).");
                if (quads)
                {
                    w.WriteLine($"/// Launch: 1-D, groups of 256, one thread per (token, head or k_pe, two pairs): tokens × {a.Heads + 1} × {perRow} threads, each");
                    w.WriteLine("/// reading and writing its 4 values in one 16-byte access and its two angles' cos and sin in 8-byte ones.");
                }
                else
                {
                    w.WriteLine($"/// Launch: 1-D, groups of 256, one thread per (token, head or k_pe, pair): tokens × {a.Heads + 1} × {perRow} threads.");
                }

                w.WriteLine("/// </summary>");
                w.WriteLine($"/// <param name=\"q\">Queries [tokens, {a.Heads}, {a.QkHeadDim}] FP32, rotated in place.</param>");
                w.WriteLine($"/// <param name=\"keyRope\">k_pe [tokens, {a.QkRopeHeadDim}] FP32, rotated in place.</param>");
                w.WriteLine("/// <param name=\"positions\">Position of each token [tokens].</param>");
                w.WriteLine($"/// <param name=\"cos\">cos(position · θ_i) [positions, {pairs}].</param>");
                w.WriteLine($"/// <param name=\"sin\">sin(position · θ_i) [positions, {pairs}].</param>");
                w.WriteLine("/// <param name=\"tokens\">Number of tokens.</param>");
                w.WriteLine("public static void RotaryEmbedding(ArrayView<float> q, ArrayView<float> keyRope, ArrayView<int> positions, ArrayView<float> cos, ArrayView<float> sin, int tokens)");
                using (w.WriteBraces())
                {
                    string unit = quads ? "quad" : "pair";
                    w.WriteLine("int index = Grid.IdxX * Group.DimX + Group.IdxX;");
                    w.WriteLine($"if (index >= tokens * {(a.Heads + 1) * perRow}) return; // the grid is rounded up to whole groups");
                    w.WriteLine($"int {unit} = index % {perRow};");
                    w.WriteLine($"int row = index / {perRow} % {a.Heads + 1}; // heads 0..{a.Heads - 1}, then k_pe");
                    w.WriteLine($"int token = index / {(a.Heads + 1) * perRow};");
                    if (quads)
                    {
                        w.WriteLine($"int angles = positions[token] * {perRow} + quad; // this thread's two angles, as one Float2 of each table");
                        w.WriteLine("Float2 c = cos.Cast<Float2>()[angles], s = sin.Cast<Float2>()[angles];");
                        w.WriteLine($"var values = row < {a.Heads} ? q.Cast<Float4>() : keyRope.Cast<Float4>();");
                        w.WriteLine($"long at = row < {a.Heads} ? ((long)token * {a.Heads} + row) * {a.QkHeadDim / 4} + {a.QkNopeHeadDim / 4} + quad : (long)token * {a.QkRopeHeadDim / 4} + quad;");
                        w.WriteLine("Float4 x = values[at];");
                        w.WriteLine("values[at] = new Float4(x.X * c.X - x.Y * s.X, x.X * s.X + x.Y * c.X, x.Z * c.Y - x.W * s.Y, x.Z * s.Y + x.W * c.Y);");
                    }
                    else
                    {
                        w.WriteLine($"int angle = positions[token] * {pairs} + pair;");
                        w.WriteLine("float c = cos[angle], s = sin[angle];");
                        w.WriteLine($"var values = row < {a.Heads} ? q : keyRope;");
                        w.WriteLine($"long at = row < {a.Heads} ? ((long)token * {a.Heads} + row) * {a.QkHeadDim} + {a.QkNopeHeadDim} + 2 * pair : (long)token * {a.QkRopeHeadDim} + 2 * pair;");
                        w.WriteLine("float x0 = values[at], x1 = values[at + 1];");
                        w.WriteLine("values[at] = x0 * c - x1 * s;");
                        w.WriteLine("values[at + 1] = x0 * s + x1 * c;");
                    }
                }

                w.WriteLine();
                w.WriteLine("/// <summary>");
                w.WriteLine("/// SwiGLU's gate: y = silu(a) · b = a / (1 + exp(−a)) · b, FP32.");
                w.WriteLine("/// Launch: 1-D, groups of 256, one thread per 4 values (16-byte loads and store).");
                w.WriteLine("/// </summary>");
                w.WriteLine("/// <param name=\"a\">Gate projection (w1·x), any shape, a multiple of 4 values.</param>");
                w.WriteLine("/// <param name=\"b\">Up projection (w3·x), same shape.</param>");
                w.WriteLine("/// <param name=\"y\">Output, same shape.</param>");
                w.WriteLine("/// <param name=\"quads\">Values / 4.</param>");
                w.WriteLine("public static void SwiGlu(ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, int quads)");
                using (w.WriteBraces())
                {
                    w.WriteLine("int quad = Grid.IdxX * Group.DimX + Group.IdxX;");
                    w.WriteLine("if (quad >= quads) return; // the grid is rounded up to whole groups");
                    w.WriteLine("Float4 gate = a.Cast<Float4>()[quad], up = b.Cast<Float4>()[quad];");
                    w.WriteLine("y.Cast<Float4>()[quad] = new Float4(");
                    w.WriteLine("    gate.X / (1f + MathF.Exp(-gate.X)) * up.X, gate.Y / (1f + MathF.Exp(-gate.Y)) * up.Y,");
                    w.WriteLine("    gate.Z / (1f + MathF.Exp(-gate.Z)) * up.Z, gate.W / (1f + MathF.Exp(-gate.W)) * up.W);");
                }

                w.WriteLine();
                w.WriteLine("/// <summary>");
                w.WriteLine($"/// FP8 weight dequantisation as stored in DeepSeek-V3's checkpoints: w[r, c] = e4m3(code[r, c]) · scale_inv[r / {_block}, c / {_block}].");
                w.WriteLine("/// Launch: 1-D, rows × ⌈columns / 4096⌉ groups of 256 in memory order; a group covers 4096 codes of its row, a thread 4 codes at a");
                w.WriteLine("/// time 256 apart (four 4-byte loads issued together, four 16-byte stores), so loads and stores stay coalesced; columns are a multiple of 4.");
                w.WriteLine("/// </summary>");
                w.WriteLine("/// <param name=\"codes\">E4M3 codes [rows, columns].</param>");
                w.WriteLine($"/// <param name=\"scales\">FP32 <c>weight_scale_inv</c> [⌈rows / {_block}⌉, ⌈columns / {_block}⌉].</param>");
                w.WriteLine("/// <param name=\"weight\">FP32 output [rows, columns].</param>");
                w.WriteLine("/// <param name=\"rows\">Rows of the weight.</param>");
                w.WriteLine("/// <param name=\"columns\">Columns of the weight.</param>");
                w.WriteLine("public static void DequantizeWeight(ArrayView<byte> codes, ArrayView<float> scales, ArrayView<float> weight, int rows, int columns)");
                using (w.WriteBraces())
                {
                    w.WriteLine("int chunks = (columns + 4095) / 4096; // groups per row");
                    w.WriteLine("int row = Grid.IdxX / chunks, quads = columns / 4;");
                    w.WriteLine("int first = (Grid.IdxX - row * chunks) * 1024 + Group.IdxX; // this thread's quads: first, first + 256, first + 512, first + 768");
                    w.WriteLine("long rowBase = (long)row * quads;");
                    w.WriteLine($"long scaleRow = (long)(row / {_block}) * ((columns + {_block - 1}) / {_block});");
                    w.WriteLine("var words = codes.Cast<uint>();");
                    w.WriteLine("var output = weight.Cast<Float4>();");
                    w.WriteLine("// All four loads first, so that 16 bytes per thread are in flight.");
                    for (int k = 0; k < 4; k++)
                    {
                        string quad = Plus("first", 256 * k);
                        w.WriteLine($"uint word{k} = {quad} < quads ? words[rowBase + {quad}] : 0u;");
                    }

                    for (int k = 0; k < 4; k++)
                    {
                        string quad = Plus("first", 256 * k);
                        w.WriteLine($"if ({quad} < quads)");
                        using (w.WriteBraces())
                        {
                            w.WriteLine($"float scale{k} = scales[scaleRow + {(k == 0 ? quad : $"({quad})")} * 4 / {_block}];");
                            w.WriteLine($"output[rowBase + {quad}] = new Float4(E4M3.DecodeByte(word{k}, 0) * scale{k}, E4M3.DecodeByte(word{k}, 1) * scale{k}, E4M3.DecodeByte(word{k}, 2) * scale{k}, E4M3.DecodeByte(word{k}, 3) * scale{k});");
                        }
                    }
                }

                w.WriteLine();
                WriteMlaCombine(w);
            }

            private void WriteMlaCombine(IndentedWriter w)
            {
                var a = Attention;
                int quads = a.KeyValueLoraRank / 4;
                w.WriteLine("/// <summary>");
                w.WriteLine("/// Merges the splits of MlaDecode: with lse_s the log-sum-exp of split s's scores and O_s its softmax-normalised output,");
                w.WriteLine("/// O = Σ_s exp(lse_s − max lse) · O_s / Σ_s exp(lse_s − max lse) (an empty split has lse −∞ and weight 0).");
                w.WriteLine($"/// Launch: 1-D, groups of 256, one thread per (sequence, head, 4 latent columns): batch × {a.Heads} × {quads} threads.");
                w.WriteLine("/// </summary>");
                w.WriteLine($"/// <param name=\"partial\">Per-split outputs [batch, splits, {a.Heads}, {a.KeyValueLoraRank}] FP32.</param>");
                w.WriteLine($"/// <param name=\"logSumExp\">Per-split log-sum-exp [batch, splits, {a.Heads}].</param>");
                w.WriteLine($"/// <param name=\"output\">Attention output in the latent space [batch, {a.Heads}, {a.KeyValueLoraRank}] FP32 (W_UV comes after).</param>");
                w.WriteLine("/// <param name=\"batch\">Sequences.</param>");
                w.WriteLine("/// <param name=\"splits\">Splits per sequence.</param>");
                w.WriteLine("public static void MlaCombine(ArrayView<float> partial, ArrayView<float> logSumExp, ArrayView<float> output, int batch, int splits)");
                using (w.WriteBraces())
                {
                    w.WriteLine("int index = Grid.IdxX * Group.DimX + Group.IdxX;");
                    w.WriteLine($"if (index >= batch * {a.Heads * quads}) return; // the grid is rounded up to whole groups");
                    w.WriteLine($"int quad = index % {quads}, head = index / {quads} % {a.Heads}, sequence = index / {a.Heads * quads};");
                    w.WriteLine("float largest = float.NegativeInfinity;");
                    w.WriteLine($"for (int s = 0; s < splits; s++) largest = MathF.Max(largest, logSumExp[(sequence * splits + s) * {a.Heads} + head]);");
                    w.WriteLine("float total = 0f;");
                    w.WriteLine("Float4 sum = new Float4(0f);");
                    w.WriteLine("var parts = partial.Cast<Float4>();");
                    w.WriteLine("for (int s = 0; s < splits; s++)");
                    using (w.WriteBraces())
                    {
                        w.WriteLine($"float lse = logSumExp[(sequence * splits + s) * {a.Heads} + head];");
                        w.WriteLine("if (lse == float.NegativeInfinity) continue; // an empty split");
                        w.WriteLine("float weight = MathF.Exp(lse - largest);");
                        w.WriteLine($"Float4 o = parts[((long)(sequence * splits + s) * {a.Heads} + head) * {quads} + quad];");
                        w.WriteLine("sum = new Float4(sum.X + weight * o.X, sum.Y + weight * o.Y, sum.Z + weight * o.Z, sum.W + weight * o.W);");
                        w.WriteLine("total += weight;");
                    }

                    w.WriteLine("float inverse = total > 0f ? 1f / total : 0f; // an empty sequence gives zeros");
                    w.WriteLine("output.Cast<Float4>()[index] = new Float4(sum.X * inverse, sum.Y * inverse, sum.Z * inverse, sum.W * inverse);");
                }
            }
        }
    }
}
