using System.Linq;
using ModelCompiler.Planning;
using static ModelCompiler.Generators.Emit.Literals;

namespace ModelCompiler.Generators.Emit
{
    internal static partial class KernelEmitter
    {
        /// <summary>Row kernels: RMSNorm (plain and fused with FP8 quantisation), act_quant, SwiGLU with quantisation.</summary>
        private sealed partial class KernelSet
        {
            private static readonly string[] s_components = { "X", "Y", "Z", "W" };

            /// <summary>The components of vector <paramref name="name"/>: v.X … v.W for Float4, the variable for a scalar.</summary>
            private static string[] Components(string name, int vector) =>
                vector == 4 ? s_components.Select(c => name + "." + c).ToArray() : new[] { name };

            private static string Vector(int vector) => vector == 4 ? "Float4" : "float";

            private static string Make(int vector, string[] parts) => vector == 4 ? $"new Float4({string.Join(", ", parts)})" : parts[0];

            /// <summary>sum += ShuffleXor(sum, off) for off = lanes/2 … 1 (a butterfly: every lane ends with the total).</summary>
            private static void WarpAllReduce(IndentedWriter w, string variable, int lanes, bool max)
            {
                for (int offset = lanes / 2; offset >= 1; offset /= 2)
                {
                    w.WriteLine(max
                        ? $"{variable} = MathF.Max({variable}, Warp.ShuffleXor({variable}, {offset}));"
                        : $"{variable} += Warp.ShuffleXor({variable}, {offset});");
                }
            }

            /// <summary>
            /// amax ← the largest amax of the <paramref name="lanes"/> threads of this thread's tile (aligned runs of a 256-thread
            /// group): a shuffle butterfly on CUDA, a shared-memory gather elsewhere.
            /// </summary>
            private static void TileMax(IndentedWriter w, int lanes, bool cuda)
            {
                if (cuda)
                {
                    WarpAllReduce(w, "amax", lanes, max: true);
                    return;
                }

                w.WriteLine("var tileMax = SharedMemory.Allocate<float>(256);");
                w.WriteLine("tileMax[Group.IdxX] = amax;");
                w.WriteLine("Group.Barrier();");
                w.WriteLine($"int tileLead = Group.IdxX & ~{lanes - 1};");
                w.WriteLine($"for (int lane = 0; lane < {lanes}; lane++) amax = MathF.Max(amax, tileMax[tileLead + lane]);");
            }

            private void WriteRmsNorm(IndentedWriter w, string name, string title, RowShape r, bool cuda, bool quantize)
            {
                int lanesPerTile = quantize ? r.LanesPerTile(_tile) : 0;
                string kernel = (quantize ? "RmsNormQuant" : "RmsNorm") + name;
                w.WriteLine("/// <summary>");
                w.WriteLine($"/// RMSNorm of {Xml.Escape(title)}: y = x · rsqrt(mean(x²) + ε) · weight over rows of {r.Width}, in FP32.");
                if (quantize)
                {
                    w.WriteLine($"/// Fused with FP8 E4M3 quantisation of y (DeepSeek's act_quant): per 1×{_tile} tile, scale = max(amax, 1e-4) / 448 and");
                    w.WriteLine("/// code = e4m3(y / scale), round to nearest even, saturating; the normalised row never goes back to memory.");
                }

                // On CUDA a row spread over several warps is read twice, as torch.compile's RMSNorm does: the sums first, then x
                // again from L2 for the output, with cache hints that keep its lines there in between (measured on the H200:
                // 0.4385 vs 0.4531 ms for rows of 7168, docs/performance.md). One warp has no barrier to hint across.
                bool readTwice = cuda && !quantize && r.Warps > 1;
                string vectors = r.Vector == 4 ? "float4s" : "values";
                string loads = $"{r.Slots} {(r.Vector == 4 ? "16-byte " : string.Empty)}load{(r.Slots == 1 ? string.Empty : "s")}"
                    + (!r.HasTail ? string.Empty : r.Slots == 1 ? ", guarded" : ", the last guarded");
                w.WriteLine($"/// Launch: one group of {r.Group} threads per row (grid = rows); thread i reads {vectors} i, i + {r.Group}, … of the row ({loads}).");
                w.WriteLine(readTwice
                    ? "/// x is read twice: for the sum of squares, its lines kept in L2 (evict_last), then again from L2 for the output (evict_first),"
                    : "/// The row stays in registers, so x is read once and y written once.");
                if (readTwice) w.WriteLine("/// with y's stores streaming (.cs); DRAM sees x once and y once (CacheHints.ReadTwice, written into the PTX at load).");
                w.WriteLine(cuda
                    ? r.Warps > 1 ? $"/// Reduction: warp butterfly (shuffles), then the {r.Warps} warp sums added in a fixed order: deterministic." : "/// Reduction: warp butterfly (shuffles): deterministic."
                    : $"/// Reduction: a shared-memory tree over the {r.Group} threads (no shuffles on OpenCL): deterministic.");
                w.WriteLine("/// </summary>");
                w.WriteLine("/// <param name=\"x\">Input rows [rows, " + r.Width + "], row-major FP32.</param>");
                w.WriteLine("/// <param name=\"weight\">The norm's weight [" + r.Width + "].</param>");
                if (quantize)
                {
                    w.WriteLine("/// <param name=\"codes\">E4M3 codes [rows, " + r.Width + "], one byte each.</param>");
                    w.WriteLine("/// <param name=\"scales\">FP32 scales [rows, " + (r.Width / _tile) + "], one per tile.</param>");
                    w.WriteLine($"public static void {kernel}(ArrayView<float> x, ArrayView<float> weight, ArrayView<byte> codes, ArrayView<float> scales)");
                }
                else
                {
                    w.WriteLine("/// <param name=\"y\">Output rows [rows, " + r.Width + "].</param>");
                    if (readTwice) w.WriteLine("[CacheHints(CacheHints.ReadTwice)]");
                    w.WriteLine($"public static void {kernel}(ArrayView<float> x, ArrayView<float> weight, ArrayView<float> y)");
                }

                using (w.WriteBraces())
                {
                    string cast = r.Vector == 4 ? ".Cast<Float4>()" : string.Empty;
                    w.WriteLine("int row = Grid.IdxX;");
                    w.WriteLine("int thread = Group.IdxX;");
                    w.WriteLine($"var xs = x{cast};");
                    w.WriteLine($"var weights = weight{cast};");
                    w.WriteLine(quantize ? "var codeWords = codes.Cast<uint>();" : $"var ys = y{cast};");
                    w.WriteLine($"long rowBase = (long)row * {r.Vectors};");
                    w.WriteLine();
                    w.WriteLine(readTwice ? "// Pass 1: read the row." : "// Load the row into registers.");
                    for (int slot = 0; slot < r.Slots; slot++)
                    {
                        string index = Plus("thread", slot * r.Group);
                        bool guarded = slot == r.Slots - 1 && r.HasTail;
                        w.WriteLine(guarded
                            ? $"{Vector(r.Vector)} v{slot} = {index} < {r.Vectors} ? xs[rowBase + {index}] : {(r.Vector == 4 ? "new Float4(0f)" : "0f")}; // tail of the row"
                            : $"{Vector(r.Vector)} v{slot} = xs[rowBase + {index}];");
                    }

                    w.WriteLine();
                    w.WriteLine("// Sum of squares.");
                    w.WriteLine("float sum = " + string.Join(" + ", Enumerable.Range(0, r.Slots).SelectMany(slot => Components("v" + slot, r.Vector).Select(c => c + " * " + c))) + ";");
                    if (cuda)
                    {
                        WarpAllReduce(w, "sum", 32, max: false);
                        if (r.Warps > 1)
                        {
                            w.WriteLine($"var warpSums = SharedMemory.Allocate<float>({r.Warps});");
                            w.WriteLine("if (Warp.LaneIdx == 0) warpSums[Warp.WarpIdx] = sum;");
                            w.WriteLine("Group.Barrier();");
                            w.WriteLine("sum = " + string.Join(" + ", Enumerable.Range(0, r.Warps).Select(i => $"warpSums[{i}]")) + ";");
                        }
                    }
                    else
                    {
                        w.WriteLine($"var partial = SharedMemory.Allocate<float>({r.Group});");
                        w.WriteLine("partial[thread] = sum;");
                        w.WriteLine("Group.Barrier();");
                        for (int stride = r.Group / 2; stride >= 1; stride /= 2)
                        {
                            w.WriteLine($"if (thread < {stride}) partial[thread] += partial[thread + {stride}];");
                            w.WriteLine("Group.Barrier();");
                        }

                        w.WriteLine("sum = partial[0];");
                    }

                    w.WriteLine($"float inverse = 1f / MathF.Sqrt(sum * (1f / {r.Width}f) + RmsNormEpsilon);");
                    w.WriteLine();
                    if (quantize && !cuda)
                    {
                        w.WriteLine($"var tileMax = SharedMemory.Allocate<float>({r.Group});");
                        w.WriteLine($"int tileLead = thread & ~{lanesPerTile - 1}; // first thread of this thread's tile");
                    }

                    w.WriteLine(quantize ? "// Normalise, quantise per tile and write codes and scales."
                        : readTwice ? "// Pass 2: read the row again (from L2), normalise, scale by the weight and write." : "// Normalise, scale by the weight and write.");
                    for (int slot = 0; slot < r.Slots; slot++)
                    {
                        string index = Plus("thread", slot * r.Group);
                        bool guarded = slot == r.Slots - 1 && r.HasTail;
                        string v = "v" + slot;
                        string n = "n" + slot;
                        if (!quantize)
                        {
                            if (guarded) w.WriteLine($"if ({index} < {r.Vectors}) // tail of the row");
                            using (guarded ? w.WriteBraces() : default(IndentedWriter.Block?))
                            {
                                if (readTwice) w.WriteLine($"{v} = xs[rowBase + {index}];");
                                w.WriteLine($"{Vector(r.Vector)} g{slot} = weights[{index}];");
                                var parts = Components(v, r.Vector).Zip(Components("g" + slot, r.Vector), (a, b) => $"{a} * inverse * {b}").ToArray();
                                w.WriteLine($"ys[rowBase + {index}] = {Make(r.Vector, parts)};");
                            }

                            continue;
                        }

                        w.WriteLine($"Float4 g{slot} = {(guarded ? $"{index} < {r.Vectors} ? weights[{index}] : new Float4(0f)" : $"weights[{index}]")};");
                        var normalised = Components(v, 4).Zip(Components("g" + slot, 4), (a, b) => $"{a} * inverse * {b}").ToArray();
                        w.WriteLine($"Float4 {n} = new Float4({string.Join(", ", normalised)});");
                        w.WriteLine($"float amax{slot} = MathF.Max(MathF.Max(MathF.Abs({n}.X), MathF.Abs({n}.Y)), MathF.Max(MathF.Abs({n}.Z), MathF.Abs({n}.W)));");
                        if (cuda)
                        {
                            WarpAllReduce(w, $"amax{slot}", lanesPerTile, max: true);
                        }
                        else
                        {
                            w.WriteLine($"tileMax[thread] = amax{slot};");
                            w.WriteLine("Group.Barrier();");
                            w.WriteLine($"amax{slot} = tileMax[tileLead];");
                            w.WriteLine($"for (int lane = 1; lane < {lanesPerTile}; lane++) amax{slot} = MathF.Max(amax{slot}, tileMax[tileLead + lane]);");
                            w.WriteLine("Group.Barrier();");
                        }

                        w.WriteLine($"float scale{slot} = E4M3.ScaleOf(amax{slot});");
                        if (guarded) w.WriteLine($"if ({index} < {r.Vectors}) // tail of the row");
                        using (guarded ? w.WriteBraces() : default(IndentedWriter.Block?))
                        {
                            w.WriteLine($"codeWords[rowBase + {index}] = E4M3.Quantize4({n}.X, {n}.Y, {n}.Z, {n}.W, scale{slot});");
                            w.WriteLine($"if ((thread & {lanesPerTile - 1}) == 0) scales[(long)row * {r.Width / _tile} + ({index}) / {lanesPerTile}] = scale{slot};");
                        }
                    }
                }

                w.WriteLine();
            }

            /// <summary>act_quant: bf16 rows → E4M3 codes and one scale per tile; 16 values (two 16-byte loads, one 16-byte store) per thread.</summary>
            private void WriteActQuant(IndentedWriter w, bool cuda)
            {
                int lanes = _tile / 16;
                int width = _spec.HiddenSize;
                w.WriteLine("/// <summary>");
                w.WriteLine($"/// DeepSeek's act_quant on rows of {width} bf16 values: per 1×{_tile} tile, scale = max(amax, 1e-4) / 448 (FP32) and");
                w.WriteLine("/// code = e4m3(x / scale), round to nearest even, saturating. The amax floor keeps an all-zero tile at zero codes, not NaN.");
                w.WriteLine($"/// Launch: 1-D, groups of 256, one thread per 16 consecutive values (two 16-byte loads, one 16-byte store), {lanes} threads per tile;");
                w.WriteLine(cuda
                    ? $"/// the tile's amax by a {lanes}-lane shuffle butterfly. Threads past the end load zeros and store nothing, so every lane reaches every shuffle."
                    : "/// the tile's amax through shared memory (no shuffles on OpenCL).");
                w.WriteLine("/// </summary>");
                w.WriteLine($"/// <param name=\"x\">Input [rows, {width}] bf16 (raw 16-bit values).</param>");
                w.WriteLine($"/// <param name=\"codes\">E4M3 codes [rows, {width}].</param>");
                w.WriteLine($"/// <param name=\"scales\">FP32 scales [rows, {width / _tile}].</param>");
                w.WriteLine("/// <param name=\"pieces\">rows × " + (width / 16) + ": the number of 16-value pieces.</param>");
                w.WriteLine("public static void ActQuantHidden(ArrayView<ushort> x, ArrayView<byte> codes, ArrayView<float> scales, int pieces)");
                using (w.WriteBraces())
                {
                    w.WriteLine("int piece = Grid.IdxX * Group.DimX + Group.IdxX;");
                    w.WriteLine("bool active = piece < pieces; // the grid is rounded up to whole groups");
                    w.WriteLine("var quads = x.Cast<Float4>();");
                    w.WriteLine("Float4 first = active ? quads[2 * piece] : new Float4(0f), second = active ? quads[2 * piece + 1] : new Float4(0f);");
                    w.WriteLine("uint p0 = Interop.FloatAsInt(first.X), p1 = Interop.FloatAsInt(first.Y), p2 = Interop.FloatAsInt(first.Z), p3 = Interop.FloatAsInt(first.W);");
                    w.WriteLine("uint p4 = Interop.FloatAsInt(second.X), p5 = Interop.FloatAsInt(second.Y), p6 = Interop.FloatAsInt(second.Z), p7 = Interop.FloatAsInt(second.W);");
                    for (int i = 0; i < 8; i++)
                    {
                        w.WriteLine($"float x{2 * i} = Bf16.Low(p{i}), x{2 * i + 1} = Bf16.High(p{i});");
                    }

                    w.WriteLine("float amax = " + Nest("MathF.Max", Enumerable.Range(0, 16).Select(i => $"MathF.Abs(x{i})").ToArray()) + ";");
                    TileMax(w, lanes, cuda);

                    w.WriteLine("float scale = E4M3.ScaleOf(amax);");
                    w.WriteLine("if (!active) return;");
                    w.WriteLine("codes.Cast<Float4>()[piece] = new Float4(");
                    w.WriteLine("    Interop.IntAsFloat(E4M3.Quantize4(x0, x1, x2, x3, scale)), Interop.IntAsFloat(E4M3.Quantize4(x4, x5, x6, x7, scale)),");
                    w.WriteLine("    Interop.IntAsFloat(E4M3.Quantize4(x8, x9, x10, x11, scale)), Interop.IntAsFloat(E4M3.Quantize4(x12, x13, x14, x15, scale)));");
                    w.WriteLine($"if ((piece & {lanes - 1}) == 0) scales[piece / {lanes}] = scale;");
                }

                w.WriteLine();
            }

            /// <summary>SwiGLU of an expert fused with the quantisation of its output (the input of the down projection).</summary>
            private void WriteSwiGluQuant(IndentedWriter w, bool cuda)
            {
                int lanes = _tile / 4;
                w.WriteLine("/// <summary>");
                w.WriteLine($"/// An expert's SwiGLU fused with FP8 E4M3 1×{_tile} quantisation of its output (the down projection's input):");
                w.WriteLine("/// h = silu(a) · b = a / (1 + exp(−a)) · b, then per tile scale = max(amax, 1e-4) / 448 and code = e4m3(h / scale).");
                w.WriteLine($"/// Launch: 1-D, groups of 256, one thread per 4 values (16-byte loads of a and b, a 4-byte store), {lanes} threads per tile.");
                w.WriteLine("/// </summary>");
                w.WriteLine($"/// <param name=\"a\">Gate projection [rows, {_expertWidth}] FP32 (w1·x).</param>");
                w.WriteLine($"/// <param name=\"b\">Up projection [rows, {_expertWidth}] FP32 (w3·x).</param>");
                w.WriteLine($"/// <param name=\"codes\">E4M3 codes [rows, {_expertWidth}].</param>");
                w.WriteLine($"/// <param name=\"scales\">FP32 scales [rows, {_expertWidth / _tile}].</param>");
                w.WriteLine("/// <param name=\"quads\">rows × " + (_expertWidth / 4) + ".</param>");
                w.WriteLine("public static void SwiGluQuantExpert(ArrayView<float> a, ArrayView<float> b, ArrayView<byte> codes, ArrayView<float> scales, int quads)");
                using (w.WriteBraces())
                {
                    w.WriteLine("int quad = Grid.IdxX * Group.DimX + Group.IdxX;");
                    w.WriteLine("bool active = quad < quads; // the grid is rounded up to whole groups");
                    w.WriteLine("Float4 gate = active ? a.Cast<Float4>()[quad] : new Float4(0f);");
                    w.WriteLine("Float4 up = active ? b.Cast<Float4>()[quad] : new Float4(0f);");
                    w.WriteLine("float h0 = gate.X / (1f + MathF.Exp(-gate.X)) * up.X, h1 = gate.Y / (1f + MathF.Exp(-gate.Y)) * up.Y;");
                    w.WriteLine("float h2 = gate.Z / (1f + MathF.Exp(-gate.Z)) * up.Z, h3 = gate.W / (1f + MathF.Exp(-gate.W)) * up.W;");
                    w.WriteLine("float amax = MathF.Max(MathF.Max(MathF.Abs(h0), MathF.Abs(h1)), MathF.Max(MathF.Abs(h2), MathF.Abs(h3)));");
                    TileMax(w, lanes, cuda);

                    w.WriteLine("float scale = E4M3.ScaleOf(amax);");
                    w.WriteLine("if (!active) return;");
                    w.WriteLine("codes.Cast<uint>()[quad] = E4M3.Quantize4(h0, h1, h2, h3, scale);");
                    w.WriteLine($"if ((quad & {lanes - 1}) == 0) scales[quad / {lanes}] = scale;");
                }

                w.WriteLine();
            }
        }
    }
}
