using System.Linq;
using ModelCompiler.Planning;

namespace ModelCompiler.Generators.Emit
{
    internal static partial class KernelEmitter
    {
        private sealed partial class KernelSet
        {
            public void WriteBackendKernels(IndentedWriter w, bool cuda)
            {
                foreach (var (name, title, shape) in _norms) WriteRmsNorm(w, name, title, shape, cuda, quantize: false);
                if (HiddenQuantUnsupported is null) WriteRmsNorm(w, "Hidden", _norms[0].Title, _hidden, cuda, quantize: true);
                if (ActQuantUnsupported is null) WriteActQuant(w, cuda);
                if (SwiGluQuantUnsupported is null) WriteSwiGluQuant(w, cuda);
                if (RouterUnsupported is null)
                {
                    if (cuda) WriteRouteCuda(w, _spec.Moe!);
                    else WriteRoutePortable(w, _spec.Moe!);
                }

                if (!cuda || _mla.Unsupported is not null) WriteMlaPortable(w);
                else WriteMlaCuda(w);
                if (cuda && _warpGroup.Unsupported is null) WriteMlaWarpGroup(w);
                if (_gemm.Unsupported is null)
                {
                    if (cuda) WriteFp8Gemm(w);
                    else WriteFp8GemmPortable(w);
                }

                if (cuda && (_warpGroup.Unsupported is null || _gemm.Unsupported is null)) WriteWaitForPhase(w);
            }

            public void WriteLauncher(IndentedWriter w)
            {
                var a = Attention;
                w.WriteLine("/// <summary>");
                w.WriteLine("/// Launches the kernels on one device's default stream: each is loaded once (the <see cref=\"Cuda\"/> variant where the device");
                w.WriteLine("/// has warp shuffles, the <see cref=\"OpenCL\"/> one elsewhere) and every buffer's length is checked first. It owns the");
                w.WriteLine("/// device memory some kernels need besides their arguments (tensor maps, MLA split scratch): dispose it with the device.");
                w.WriteLine("/// </summary>");
                w.WriteLine(Headers.GeneratedCode);
                using (w.WriteBlock("public sealed class Launcher : System.IDisposable"))
                {
                    w.WriteLine("private readonly GpuDevice _device;");
                    w.WriteLine("private readonly bool _shuffles;");
                    w.WriteLine("private readonly bool _tensorCores;");
                    if (_warpGroup.Unsupported is null) w.WriteLine("private bool _warpGroups;");
                    if (_warpGroup.Unsupported is null) w.WriteLine("private TensorMapCache? _mlaMaps;   // MlaDecodeWarpGroup's four maps (q̃, q_pe, c_KV, k_pe: 64 × 64 boxes, 128-byte swizzle)");
                    if (_gemm.Unsupported is null) w.WriteLine($"private TensorMapCache? _gemmMaps;  // Fp8Gemm's two maps (a, weight: bytes, {Fp8GemmShape.Tile} × {Fp8GemmShape.Tile} boxes, 128-byte swizzle)");
                    w.WriteLine("private ILGPU.Runtime.MemoryBuffer1D<float, Stride1D.Dense>? _partial;   // MlaDecode's per-split outputs");
                    w.WriteLine("private ILGPU.Runtime.MemoryBuffer1D<float, Stride1D.Dense>? _logSumExp; // and their log-sum-exps");
                    w.WriteLine();
                    w.WriteSummary("A launcher for the kernels on device.");
                    w.WriteLine("public Launcher(GpuDevice device)");
                    using (w.WriteBraces())
                    {
                        w.WriteLine("_device = device;");
                        w.WriteLine("_shuffles = device.HasWarpShuffles;");
                        w.WriteLine("_tensorCores = device.Backend == GpuBackend.Cuda; // inline PTX runs only there");
                        if (_warpGroup.Unsupported is null) w.WriteLine("_warpGroups = device.HasWarpGroupMma; // wgmma: compute capability 9.0");
                    }

                    w.WriteLine();
                    w.WriteSummary("The device the kernels run on.");
                    w.WriteLine("public GpuDevice Device => _device;");
                    w.WriteLine();
                    w.WriteSummary("Frees the device memory the launcher allocated (not the device's).");
                    w.WriteLine("public void Dispose()");
                    using (w.WriteBraces())
                    {
                        if (_warpGroup.Unsupported is null) w.WriteLine("_mlaMaps?.Dispose();");
                        if (_gemm.Unsupported is null) w.WriteLine("_gemmMaps?.Dispose();");
                        w.WriteLine("_partial?.Dispose();");
                        w.WriteLine("_logSumExp?.Dispose();");
                    }
                    w.WriteLine();
                    w.WriteLine("private AcceleratorStream Stream => _device.Accelerator.DefaultStream;");
                    if (_warpGroup.Unsupported is null)
                    {
                        w.WriteLine();
                        w.WriteSummary("Whether MlaDecode runs the warp-group kernel (Cuda.MlaDecodeWarpGroup); true on compute capability 9.0, where it can be turned off to compare with the mma.sync kernel.");
                        w.WriteLine("public bool WarpGroupMma");
                        using (w.WriteBraces())
                        {
                            w.WriteLine("get => _warpGroups;");
                            w.WriteLine("set => _warpGroups = value && _device.HasWarpGroupMma;");
                        }
                    }

                    w.WriteLine();

                    foreach (var (name, _, shape) in _norms)
                    {
                        Method(w, $"RmsNorm{name}", $"RMSNorm of rows of {shape.Width} (see Cuda.RmsNorm{name}).", true,
                            new[] { ("float", "x"), ("float", "weight"), ("float", "y") },
                            new[]
                            {
                                $"int rows = BufferChecks.Rows(x.Length, {shape.Width}, \"RmsNorm{name}\", nameof(x));",
                                $"BufferChecks.Length(weight.Length, {shape.Width}, \"RmsNorm{name}\", nameof(weight));",
                                $"BufferChecks.Length(y.Length, x.Length, \"RmsNorm{name}\", nameof(y));",
                                "if (rows == 0) return;",
                            },
                            $"new KernelConfig(rows, {shape.Group})");
                    }

                    if (HiddenQuantUnsupported is null)
                    {
                        Method(w, "RmsNormQuantHidden", "RMSNorm of the residual stream fused with FP8 quantisation (see Cuda.RmsNormQuantHidden).", true,
                            new[] { ("float", "x"), ("float", "weight"), ("byte", "codes"), ("float", "scales") },
                            new[]
                            {
                                $"int rows = BufferChecks.Rows(x.Length, Hidden, \"RmsNormQuantHidden\", nameof(x));",
                                "BufferChecks.Length(weight.Length, Hidden, \"RmsNormQuantHidden\", nameof(weight));",
                                "BufferChecks.Length(codes.Length, x.Length, \"RmsNormQuantHidden\", nameof(codes));",
                                $"BufferChecks.Length(scales.Length, (long)rows * {_spec.HiddenSize / _tile}, \"RmsNormQuantHidden\", nameof(scales));",
                                "if (rows == 0) return;",
                            },
                            $"new KernelConfig(rows, {_hidden.Group})");
                    }

                    if (ActQuantUnsupported is null)
                    {
                        Method(w, "ActQuantHidden", "act_quant of bf16 rows of the residual stream (see Cuda.ActQuantHidden).", true,
                            new[] { ("ushort", "x"), ("byte", "codes"), ("float", "scales") },
                            new[]
                            {
                                "int rows = BufferChecks.Rows(x.Length, Hidden, \"ActQuantHidden\", nameof(x));",
                                "BufferChecks.Length(codes.Length, x.Length, \"ActQuantHidden\", nameof(codes));",
                                $"BufferChecks.Length(scales.Length, (long)rows * {_spec.HiddenSize / _tile}, \"ActQuantHidden\", nameof(scales));",
                                $"int pieces = checked(rows * {_spec.HiddenSize / 16});",
                                "if (pieces == 0) return;",
                            },
                            "new KernelConfig(BufferChecks.Groups(pieces, 256), 256)", "pieces");
                    }

                    if (SwiGluQuantUnsupported is null)
                    {
                        Method(w, "SwiGluQuantExpert", "An expert's SwiGLU fused with FP8 quantisation (see Cuda.SwiGluQuantExpert).", true,
                            new[] { ("float", "a"), ("float", "b"), ("byte", "codes"), ("float", "scales") },
                            new[]
                            {
                                "int rows = BufferChecks.Rows(a.Length, ExpertWidth, \"SwiGluQuantExpert\", nameof(a));",
                                "BufferChecks.Length(b.Length, a.Length, \"SwiGluQuantExpert\", nameof(b));",
                                "BufferChecks.Length(codes.Length, a.Length, \"SwiGluQuantExpert\", nameof(codes));",
                                $"BufferChecks.Length(scales.Length, (long)rows * {_expertWidth / _tile}, \"SwiGluQuantExpert\", nameof(scales));",
                                "int quads = checked(rows * (ExpertWidth / 4));",
                                "if (quads == 0) return;",
                            },
                            "new KernelConfig(BufferChecks.Groups(quads, 256), 256)", "quads");
                    }

                    Method(w, "RotaryEmbedding", "Interleaved RoPE in place on q_pe and k_pe (see Kernels.RotaryEmbedding).", false,
                        new[] { ("float", "q"), ("float", "keyRope"), ("int", "positions"), ("float", "cos"), ("float", "sin") },
                        new[]
                        {
                            "int tokens = BufferChecks.Rows(q.Length, Heads * QueryHeadDim, \"RotaryEmbedding\", nameof(q));",
                            "BufferChecks.Length(keyRope.Length, (long)tokens * RopeHeadDim, \"RotaryEmbedding\", nameof(keyRope));",
                            "BufferChecks.Length(positions.Length, tokens, \"RotaryEmbedding\", nameof(positions));",
                            "BufferChecks.Length(sin.Length, cos.Length, \"RotaryEmbedding\", nameof(sin));",
                            "BufferChecks.Rows(cos.Length, RopeHeadDim / 2, \"RotaryEmbedding\", nameof(cos));",
                            "if (tokens == 0) return;",
                        },
                        $"new KernelConfig(BufferChecks.Groups((long)tokens * {(a.Heads + 1) * RopeThreadsPerRow}, 256), 256)", "tokens");

                    Method(w, "SwiGlu", "silu(a)·b (see Kernels.SwiGlu).", false,
                        new[] { ("float", "a"), ("float", "b"), ("float", "y") },
                        new[]
                        {
                            "int quads = BufferChecks.Rows(a.Length, 4, \"SwiGlu\", nameof(a));",
                            "BufferChecks.Length(b.Length, a.Length, \"SwiGlu\", nameof(b));",
                            "BufferChecks.Length(y.Length, a.Length, \"SwiGlu\", nameof(y));",
                            "if (quads == 0) return;",
                        },
                        "new KernelConfig(BufferChecks.Groups(quads, 256), 256)", "quads");

                    Method(w, "DequantizeWeight", $"FP8 weight [rows, columns] with {_block}×{_block} scales → FP32 (see Kernels.DequantizeWeight).", false,
                        new[] { ("byte", "codes"), ("float", "scales"), ("float", "weight") },
                        new[]
                        {
                            "BufferChecks.Length(codes.Length, (long)rows * columns, \"DequantizeWeight\", nameof(codes));",
                            "if (columns % 4 != 0) throw new System.ArgumentException($\"DequantizeWeight: {columns} columns are not a multiple of 4.\", nameof(columns));",
                            $"BufferChecks.Length(scales.Length, (long)((rows + {_block - 1}) / {_block}) * ((columns + {_block - 1}) / {_block}), \"DequantizeWeight\", nameof(scales));",
                            "BufferChecks.Length(weight.Length, codes.Length, \"DequantizeWeight\", nameof(weight));",
                            "if (rows == 0 || columns == 0) return;",
                        },
                        "new KernelConfig(checked(rows * ((columns + 4095) / 4096)), 256)", "rows, columns", "int rows, int columns");

                    if (RouterUnsupported is null)
                    {
                        var moe = _spec.Moe!;
                        Method(w, "Route", "The MoE gate after its GEMM (see Cuda.Route).", true,
                            new[] { ("float", "logits"), ("float", "bias"), ("int", "experts"), ("float", "weights") },
                            new[]
                            {
                                "int tokens = BufferChecks.Rows(logits.Length, RoutedExperts, \"Route\", nameof(logits));",
                                "BufferChecks.Length(bias.Length, RoutedExperts, \"Route\", nameof(bias));",
                                "BufferChecks.Length(experts.Length, (long)tokens * ActivatedExperts, \"Route\", nameof(experts));",
                                "BufferChecks.Length(weights.Length, (long)tokens * ActivatedExperts, \"Route\", nameof(weights));",
                                "if (tokens == 0) return;",
                            },
                            "_shuffles ? new KernelConfig(BufferChecks.Groups(tokens, 4), 128) : new KernelConfig(BufferChecks.Groups(tokens, 64), 64)", "tokens");
                    }

                    WriteMlaLauncher(w);
                    if (_gemm.Unsupported is null) WriteFp8GemmLauncher(w);
                }
            }

            private void WriteFp8GemmLauncher(IndentedWriter w)
            {
                const int T = Fp8GemmShape.Tile;
                w.WriteLine();
                w.WriteLine("/// <summary>");
                w.WriteLine($"/// The FP8 GEMM with fine-grained scaling (see Cuda.Fp8Gemm): output [m, n] = a [m, k] · weightᵀ, a and weight E4M3 codes scaled");
                w.WriteLine($"/// per 1 × {T} tile of a (activationScales [m, k / {T}]) and per {T} × {T} block of weight (weightScales [n / {T}, k / {T}]), FP32 out.");
                w.WriteLine("/// n and k multiples of 128. On Hopper the warp-group MMA kernel; elsewhere OpenCL.Fp8Gemm, the same sums in plain loops.");
                w.WriteLine("/// </summary>");
                w.WriteLine("public void Fp8Gemm(ArrayView<byte> activations, ArrayView<float> activationScales, ArrayView<byte> weight, ArrayView<float> weightScales, ArrayView<float> output, int m, int n, int k)");
                using (w.WriteBraces())
                {
                    w.WriteLine("if (m < 0) throw new System.ArgumentOutOfRangeException(nameof(m), m, \"Fp8Gemm: m must not be negative.\");");
                    w.WriteLine($"if (n <= 0 || n % {T} != 0) throw new System.ArgumentOutOfRangeException(nameof(n), n, \"Fp8Gemm: n must be a positive multiple of {T} (one weight block).\");");
                    w.WriteLine($"if (k <= 0 || k % {T} != 0 || k > {T * Fp8GemmShape.MaxBlocks}) throw new System.ArgumentOutOfRangeException(nameof(k), k, \"Fp8Gemm: k must be a positive multiple of {T} (one activation tile), at most {T * Fp8GemmShape.MaxBlocks}.\");");
                    w.WriteLine("BufferChecks.Length(activations.Length, (long)m * k, \"Fp8Gemm\", nameof(activations));");
                    w.WriteLine($"BufferChecks.Length(activationScales.Length, (long)m * (k / {T}), \"Fp8Gemm\", nameof(activationScales));");
                    w.WriteLine("BufferChecks.Length(weight.Length, (long)n * k, \"Fp8Gemm\", nameof(weight));");
                    w.WriteLine($"BufferChecks.Length(weightScales.Length, (long)(n / {T}) * (k / {T}), \"Fp8Gemm\", nameof(weightScales));");
                    w.WriteLine("BufferChecks.Length(output.Length, (long)m * n, \"Fp8Gemm\", nameof(output));");
                    w.WriteLine("if (m == 0) return;");
                    w.WriteLine("if (!_device.HasWarpGroupMma)");
                    using (w.WriteBraces())
                    {
                        w.WriteLine("var portable = _device.Load<System.Action<AcceleratorStream, KernelConfig, ArrayView<byte>, ArrayView<float>, ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int, int>>(");
                        w.WriteLine("    new System.Action<ArrayView<byte>, ArrayView<float>, ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int, int>(OpenCL.Fp8Gemm));");
                        w.WriteLine("portable(Stream, new KernelConfig(BufferChecks.Groups((long)m * n, 256), 256), activations, activationScales, weight, weightScales, output, m, n, k);");
                        w.WriteLine("return;");
                    }

                    w.WriteLine();
                    w.WriteLine("long maps = (_gemmMaps ??= new TensorMapCache(_device.Accelerator)).Address(Stream,");
                    w.WriteLine($"    new TiledMap(activations.LoadEffectiveAddressAsPtr().ToInt64(), k, m, k, {T}, {T}, Swizzle128: true, ElementBytes: 1),");
                    w.WriteLine($"    new TiledMap(weight.LoadEffectiveAddressAsPtr().ToInt64(), k, n, k, {T}, {T}, Swizzle128: true, ElementBytes: 1));");
                    w.WriteLine("var gemm = _device.Load<System.Action<AcceleratorStream, KernelConfig, long, ArrayView<float>, ArrayView<float>, long, int, int, int>>(");
                    w.WriteLine($"    new System.Action<long, ArrayView<float>, ArrayView<float>, long, int, int, int>(Cuda.Fp8Gemm), dynamicSharedBytes: {Fp8GemmShape.SharedBytes}, hopperSpecific: true);");
                    w.WriteLine($"gemm(Stream, new KernelConfig(checked(((m + {T - 1}) / {T}) * (n / {T})), {Fp8GemmShape.Threads}, SharedMemoryConfig.RequestDynamic<Float4>({Fp8GemmShape.SharedBytes / 16})), maps, activationScales, weightScales, output.LoadEffectiveAddressAsPtr().ToInt64(), m, n, k);");
                }

            }

            private void WriteMlaLauncher(IndentedWriter w)
            {
                var a = Attention;
                bool tensorCores = _mla.Unsupported is null;
                string cudaConfig = tensorCores
                    ? $"new KernelConfig(batch * splits * {a.Heads / _mla.HeadsPerGroup}, {_mla.Threads}, SharedMemoryConfig.RequestDynamic<uint>({_mla.SharedBytes / 4}))"
                    : $"new KernelConfig(batch * splits * {a.Heads}, 128)";
                w.WriteLine("/// <summary>");
                w.WriteLine("/// Absorbed MLA decoding (see Cuda.MlaDecode): ō [batch, heads, d_c] for each sequence's query against its first lengths[b]");
                w.WriteLine("/// cached tokens. With splits &gt; 1 the sequence is cut into splits scored in parallel and merged by MlaCombine, which keeps the");
                w.WriteLine("/// GPU busy when the batch is small; scratch space for the splits is allocated once and kept.");
                w.WriteLine("/// </summary>");
                w.WriteLine("public void MlaDecode(ArrayView<ushort> queryLatent, ArrayView<ushort> queryRope, ArrayView<ushort> latentCache, ArrayView<ushort> ropeCache,");
                w.WriteLine("    ArrayView<int> lengths, ArrayView<float> output, int capacity, int splits = 1)");
                using (w.WriteBraces())
                {
                    w.WriteLine("int batch = checked((int)lengths.Length);");
                    w.WriteLine("if (splits < 1) throw new System.ArgumentOutOfRangeException(nameof(splits), splits, \"MlaDecode: splits must be at least 1.\");");
                    w.WriteLine("if (capacity < 1) throw new System.ArgumentOutOfRangeException(nameof(capacity), capacity, \"MlaDecode: the cache must hold at least one token per sequence.\");");
                    w.WriteLine("BufferChecks.Length(queryLatent.Length, (long)batch * Heads * KeyValueLatent, \"MlaDecode\", nameof(queryLatent));");
                    w.WriteLine("BufferChecks.Length(queryRope.Length, (long)batch * Heads * RopeHeadDim, \"MlaDecode\", nameof(queryRope));");
                    w.WriteLine("BufferChecks.Length(latentCache.Length, (long)batch * capacity * KeyValueLatent, \"MlaDecode\", nameof(latentCache));");
                    w.WriteLine("BufferChecks.Length(ropeCache.Length, (long)batch * capacity * RopeHeadDim, \"MlaDecode\", nameof(ropeCache));");
                    w.WriteLine("BufferChecks.Length(output.Length, (long)batch * Heads * KeyValueLatent, \"MlaDecode\", nameof(output));");
                    w.WriteLine("if (batch == 0) return;");
                    w.WriteLine("var partial = splits == 1 ? output : Scratch(ref _partial, (long)batch * splits * Heads * KeyValueLatent);");
                    w.WriteLine("var logSumExp = Scratch(ref _logSumExp, (long)batch * splits * Heads);");
                    if (_warpGroup.Unsupported is null)
                    {
                        w.WriteLine("long[] addresses = _warpGroups ? new[] { queryLatent.LoadEffectiveAddressAsPtr().ToInt64(), queryRope.LoadEffectiveAddressAsPtr().ToInt64(), latentCache.LoadEffectiveAddressAsPtr().ToInt64(), ropeCache.LoadEffectiveAddressAsPtr().ToInt64(), partial.LoadEffectiveAddressAsPtr().ToInt64() } : System.Array.Empty<long>();");
                        w.WriteLine("if (_warpGroups && System.Array.TrueForAll(addresses, address => address % 16 == 0) && (long)batch * capacity <= int.MaxValue) // 16-byte copies; 32-bit copy coordinates");
                        using (w.WriteBraces())
                        {
                            w.WriteLine("long maps = (_mlaMaps ??= new TensorMapCache(_device.Accelerator)).Address(Stream,");
                            w.WriteLine("    new TiledMap(addresses[0], KeyValueLatent, (long)batch * Heads, KeyValueLatent * 2, 64, 64, Swizzle128: true),");
                            w.WriteLine("    new TiledMap(addresses[1], RopeHeadDim, (long)batch * Heads, RopeHeadDim * 2, 64, 64, Swizzle128: true),");
                            w.WriteLine("    new TiledMap(addresses[2], KeyValueLatent, (long)batch * capacity, KeyValueLatent * 2, 64, 64, Swizzle128: true),");
                            w.WriteLine("    new TiledMap(addresses[3], RopeHeadDim, (long)batch * capacity, RopeHeadDim * 2, 64, 64, Swizzle128: true));");
                            w.WriteLine("var decode = _device.Load<System.Action<AcceleratorStream, KernelConfig, long, long, ArrayView<int>, long, ArrayView<float>, int, int>>(");
                            w.WriteLine($"    new System.Action<long, long, ArrayView<int>, long, ArrayView<float>, int, int>(Cuda.MlaDecodeWarpGroup), dynamicSharedBytes: {_warpGroup.SharedBytes}, hopperSpecific: true);");
                            w.WriteLine($"decode(Stream, new KernelConfig(batch * splits * {a.Heads / WarpGroupMlaShape.HeadsPerGroup}, {WarpGroupMlaShape.Threads}, SharedMemoryConfig.RequestDynamic<Float4>({_warpGroup.SharedBytes / 16})), maps, maps + (2 * TensorMap.Bytes), lengths, addresses[4], logSumExp, capacity, splits);");
                        }

                        if (!tensorCores) w.WriteLine("else");
                    }

                    if (tensorCores)
                    {
                        w.WriteLine(_warpGroup.Unsupported is null ? "else if (_tensorCores)" : "if (_tensorCores)");
                        using (w.WriteBraces())
                        {
                            w.WriteLine("var decode = _device.Load<System.Action<AcceleratorStream, KernelConfig, ArrayView<ushort>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, int>>(");
                            w.WriteLine($"    new System.Action<ArrayView<ushort>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, int>(Cuda.MlaDecode), dynamicSharedBytes: {_mla.SharedBytes});");
                            w.WriteLine($"decode(Stream, {cudaConfig}, queryLatent, queryRope, latentCache, ropeCache, lengths, partial, logSumExp, capacity, splits);");
                        }

                        w.WriteLine("else");
                    }

                    using (w.WriteBraces())
                    {
                        w.WriteLine("var decode = _device.Load<System.Action<AcceleratorStream, KernelConfig, ArrayView<ushort>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, int>>(");
                        w.WriteLine($"    {(tensorCores ? "new System.Action<ArrayView<ushort>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, int>(OpenCL.MlaDecode)" : "_shuffles ? new System.Action<ArrayView<ushort>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, int>(Cuda.MlaDecode) : OpenCL.MlaDecode")});");
                        w.WriteLine($"decode(Stream, new KernelConfig(batch * splits * {a.Heads}, 128), queryLatent, queryRope, latentCache, ropeCache, lengths, partial, logSumExp, capacity, splits);");
                    }

                    w.WriteLine("if (splits == 1) return;");
                    w.WriteLine("var combine = _device.Load<System.Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>>(");
                    w.WriteLine("    new System.Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(MlaCombine));");
                    w.WriteLine($"combine(Stream, new KernelConfig(BufferChecks.Groups((long)batch * {a.Heads * (a.KeyValueLoraRank / 4)}, 256), 256), partial, logSumExp, output, batch, splits);");
                }

                w.WriteLine();
                w.WriteLine("private ArrayView<float> Scratch(ref ILGPU.Runtime.MemoryBuffer1D<float, Stride1D.Dense>? buffer, long length)");
                using (w.WriteBraces())
                {
                    w.WriteLine("if (buffer is null || buffer.Length < length)");
                    using (w.WriteBraces())
                    {
                        w.WriteLine("buffer?.Dispose();");
                        w.WriteLine("buffer = _device.Accelerator.Allocate1D<float>(length);");
                    }

                    w.WriteLine("return buffer.View.SubView(0, length);");
                }
            }

            private static void Method(IndentedWriter w, string name, string summary, bool perBackend, (string Type, string Name)[] views, string[] checks, string config, string extraArguments = "", string extraParameters = "")
            {
                string viewTypes = string.Join(", ", views.Select(v => $"ArrayView<{v.Type}>"));
                string extraTypes = extraArguments.Length == 0 ? string.Empty : ", " + string.Join(", ", extraArguments.Split(',').Select(_ => "int"));
                string kernelType = $"System.Action<{viewTypes}{extraTypes}>";
                string launcherType = $"System.Action<AcceleratorStream, KernelConfig, {viewTypes}{extraTypes}>";
                string parameters = string.Join(", ", views.Select(v => $"ArrayView<{v.Type}> {v.Name}")) + (extraParameters.Length > 0 ? ", " + extraParameters : string.Empty);
                string arguments = string.Join(", ", views.Select(v => v.Name)) + (extraArguments.Length > 0 ? ", " + extraArguments : string.Empty);
                w.WriteSummary(summary);
                w.WriteLine($"public void {name}({parameters})");
                using (w.WriteBraces())
                {
                    foreach (string check in checks) w.WriteLine(check);
                    string kernel = perBackend ? $"_shuffles ? new {kernelType}(Cuda.{name}) : OpenCL.{name}" : $"new {kernelType}(Kernels.{name})";
                    w.WriteLine($"_device.Load<{launcherType}>({kernel})");
                    w.WriteLine($"    (Stream, {config}, {arguments});");
                }

                w.WriteLine();
            }
        }
    }
}
