using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using ModelCompiler.Generators.Model;
using ModelCompiler.Planning;
using static ModelCompiler.Generators.Emit.Literals;

namespace ModelCompiler.Generators.Emit
{
    /// <summary>
    /// Emits <c>{Model}.Kernels.g.cs</c> when the project references ModelCompiler.Gpu: ILGPU kernels with the declaration's
    /// dimensions as constants and their loops unrolled (ILGPU 1.5.3 does not unroll). Reductions come in two variants chosen
    /// per backend: warp shuffles (<c>Kernels.Cuda</c>, also ILGPU's CPU simulator) and shared memory (<c>Kernels.OpenCL</c>,
    /// where ILGPU cannot shuffle). <c>Kernels.Launcher</c> loads the right variant once and checks buffer lengths.
    /// </summary>
    internal static partial class KernelEmitter
    {
        public static GeneratedFile Emit(ModelGeneration g)
        {
            var h = g.Hierarchy;
            var s = g.Spec;
            var k = new KernelSet(s);
            var w = new IndentedWriter();
            Headers.Write(w, h);
            w.WriteLine("using System;");
            w.WriteLine("using ILGPU;");
            w.WriteLine("using ILGPU.Runtime;");
            w.WriteLine("using ILGPU.Runtime.Cuda;");
            w.WriteLine("using ILGPU.Util;");
            w.WriteLine("using ModelCompiler.Gpu;");
            w.WriteLine();
            using (Headers.OpenHierarchy(w, h))
            using (w.WriteBlock("partial class " + h.Name))
            {
                w.WriteLine($"/// <summary>Fused ILGPU kernels specialised to {Xml.Escape(h.Name)}: every width below is a constant, every loop unrolled.</summary>");
                w.WriteLine("/// <remarks>");
                w.WriteLine("/// <list type=\"bullet\">");
                foreach (string line in k.Inventory()) w.WriteLine("/// <item>" + Xml.Escape(line) + "</item>");
                w.WriteLine("/// </list>");
                w.WriteLine("/// </remarks>");
                w.WriteLine(Headers.GeneratedCode);
                using (w.WriteBlock("public static partial class Kernels"))
                {
                    k.WriteConstants(w);
                    k.WriteNeutralKernels(w);
                    w.WriteLine();
                    w.WriteSummary("Kernels that reduce with warp shuffles and use inline PTX: CUDA, and ILGPU's CPU simulator (which takes the managed side of every inline-PTX branch).");
                    using (w.WriteBlock("public static class Cuda"))
                    {
                        k.WriteBackendKernels(w, cuda: true);
                    }

                    w.WriteLine();
                    w.WriteSummary("The same kernels reducing through shared memory, for OpenCL (ILGPU 1.5.3 cannot compile warp shuffles there): PoCL runs them on the CPU in CI.");
                    using (w.WriteBlock("public static class OpenCL"))
                    {
                        k.WriteBackendKernels(w, cuda: false);
                    }

                    w.WriteLine();
                    k.WriteLauncher(w);
                }
            }

            return new GeneratedFile(h.FilenameHint + ".Kernels.g.cs", w.ToString());
        }

        /// <summary>The kernels one declaration gets, with the reasons for those it does not.</summary>
        private sealed partial class KernelSet
        {
            private readonly ModelSpec _spec;
            private readonly List<(string Name, string Title, RowShape Shape)> _norms = new List<(string, string, RowShape)>();
            private readonly int _tile;
            private readonly int _block;
            private readonly RowShape _hidden;
            private readonly int _expertWidth;
            private readonly MlaShape _mla;
            private readonly WarpGroupMlaShape _warpGroup;
            private readonly Fp8GemmShape _gemm;

            public KernelSet(ModelSpec spec)
            {
                _spec = spec;
                _tile = spec.Precision.ActivationTile;
                _block = spec.Precision.WeightBlock;
                _hidden = new RowShape(spec.HiddenSize);
                _norms.Add(("Hidden", "the residual stream (input_layernorm, post_attention_layernorm, norm)", _hidden));
                if (spec.Attention.QueryLoraRank > 0)
                {
                    _norms.Add(("QueryLatent", "the query latent (q_a_layernorm)", new RowShape(spec.Attention.QueryLoraRank)));
                }

                _norms.Add(("KeyValueLatent", "the key-value latent (kv_a_layernorm)", new RowShape(spec.Attention.KeyValueLoraRank)));
                _expertWidth = spec.Moe?.ExpertIntermediateSize ?? spec.DenseIntermediateSize;
                _mla = new MlaShape(spec.Attention);
                _warpGroup = new WarpGroupMlaShape(spec.Attention);
                _gemm = new Fp8GemmShape(spec.Precision);
            }

            private AttentionSpec Attention => _spec.Attention;

            private int HiddenLanesPerTile => _hidden.LanesPerTile(_tile);

            private string? HiddenQuantUnsupported => HiddenLanesPerTile == 0
                ? $"the hidden size {_spec.HiddenSize} is not a multiple of the {_tile}-wide activation tile held by a power-of-two run of lanes"
                : null;

            private string? ActQuantUnsupported => _spec.HiddenSize % _tile != 0 || _tile % 16 != 0 || _tile / 16 > 32 || !RowShape.IsPowerOfTwo(_tile / 16)
                ? $"the hidden size {_spec.HiddenSize} and the {_tile}-wide tile do not map onto lanes of 16 bf16 values"
                : null;

            private string? SwiGluQuantUnsupported => _expertWidth % _tile != 0 || _tile % 4 != 0 || _tile / 4 > 32 || !RowShape.IsPowerOfTwo(_tile / 4)
                ? $"the expert width {_expertWidth} is not a multiple of the {_tile}-wide activation tile"
                : null;

            private string? RouterUnsupported => _spec.Moe is { } moe ? new RouterShape(moe).Unsupported(moe) : "the model has no MoE layer";

            public IEnumerable<string> Inventory()
            {
                foreach (var (name, title, shape) in _norms)
                {
                    string reads = shape.Warps > 1 ? "on CUDA the row read twice, kept in L2 between the reads" : "row in registers";
                    yield return $"RmsNorm{name}: RMSNorm of {title}, {shape.Width} wide, {reads} ({shape.Group} threads × {shape.Slots} loads of {shape.Vector}).";
                }

                yield return HiddenQuantUnsupported is { } q ? $"RmsNormQuantHidden: not generated because {q}." : $"RmsNormQuantHidden: RMSNorm fused with FP8 E4M3 1×{_tile} quantisation.";
                yield return ActQuantUnsupported is { } a ? $"ActQuantHidden: not generated because {a}." : $"ActQuantHidden: bf16 → FP8 E4M3 with one FP32 scale per 1×{_tile} tile (act_quant).";
                yield return "RotaryEmbedding: interleaved RoPE on q_pe and k_pe from cos/sin tables.";
                yield return "SwiGlu: silu(a)·b.";
                yield return SwiGluQuantUnsupported is { } sq ? $"SwiGluQuantExpert: not generated because {sq}." : $"SwiGluQuantExpert: silu(a)·b fused with FP8 E4M3 1×{_tile} quantisation, rows of {_expertWidth}.";
                yield return $"DequantizeWeight: FP8 E4M3 weights with {_block}×{_block} block scales → FP32.";
                yield return RouterUnsupported is { } r ? $"Route: not generated because {r}." : "Route: the whole MoE gate after its GEMM in one warp per token.";
                yield return _mla.Unsupported is { } m
                    ? $"MlaDecode (CUDA): the tensor-core kernel was not generated because {m}; CUDA runs the shared-memory kernel."
                    : $"MlaDecode: absorbed MLA decoding over the latent cache, tensor-core mma on CUDA ({_mla.HeadsPerGroup} heads per group), split over the sequence, MlaCombine merging the splits.";
                yield return _warpGroup.Unsupported is { } wg
                    ? $"MlaDecodeWarpGroup (Hopper): not generated because {wg}."
                    : $"MlaDecodeWarpGroup: the same on Hopper's warp-group MMA (wgmma, sm_90a), 64 heads per group, 64-token chunks copied asynchronously; MlaDecode picks it on compute capability 9.0.";
                yield return _gemm.Unsupported is { } gemm
                    ? $"Fp8Gemm (Hopper): not generated because {gemm}."
                    : $"Fp8Gemm: the FP8 GEMM with 1×{_tile} activation and {_block}×{_block} weight scales on Hopper's warp-group MMA (wgmma e4m3, sm_90a), promoted to FP32 every {_spec.Precision.PromotionInterval} values of k.";
            }

            public void WriteConstants(IndentedWriter w)
            {
                var a = Attention;
                Const(w, "Hidden", _spec.HiddenSize, "Width of the residual stream.");
                Const(w, "Heads", a.Heads, "Attention heads.");
                Const(w, "QueryLatent", a.QueryLoraRank, "Query latent width (0: no query compression).");
                Const(w, "KeyValueLatent", a.KeyValueLoraRank, "Key-value latent width d_c: the cached part of each token besides the rotary key.");
                Const(w, "NopeHeadDim", a.QkNopeHeadDim, "Per-head non-rotary query/key width.");
                Const(w, "RopeHeadDim", a.QkRopeHeadDim, "Rotary width (shared key k_pe, and each head's q_pe).");
                Const(w, "QueryHeadDim", a.QkHeadDim, "Per-head query width.");
                Const(w, "ExpertWidth", _expertWidth, "Intermediate width of one routed expert (of the dense FFN without MoE).");
                Const(w, "ActivationTile", _tile, "FP8 activation tile: values sharing one scale.");
                Const(w, "WeightBlock", _block, "FP8 weight block edge.");
                if (_spec.Moe is { } moe)
                {
                    Const(w, "RoutedExperts", moe.RoutedExperts, "Routed experts.");
                    Const(w, "ActivatedExperts", moe.ActivatedExperts, "Experts per token.");
                    Const(w, "ExpertGroups", moe.ExpertGroups, "Expert groups of group-limited routing.");
                    Const(w, "GroupsPerToken", moe.GroupsPerToken, "Groups a token may route to.");
                }

                w.WriteSummary("The attention softmax scale: 1/√(qk_nope + qk_rope), times mscale² under YaRN.");
                w.WriteLine($"public const float SoftmaxScale = {Float(RopeMath.SoftmaxScale(_spec))};");
                w.WriteLine();
                w.WriteSummary("RMSNorm epsilon.");
                w.WriteLine($"public const float RmsNormEpsilon = {Float(_spec.RmsNormEpsilon)};");
                w.WriteLine();
            }

            private static void Const(IndentedWriter w, string name, int value, string summary)
            {
                w.WriteSummary(summary);
                w.WriteLine($"public const int {name} = {Int(value)};");
                w.WriteLine();
            }
        }

        internal static string Float(double value)
        {
            string text = ((float)value).ToString("R", CultureInfo.InvariantCulture);
            if (text.IndexOfAny(new[] { '.', 'E', 'N', 'I' }) < 0) text += ".0";
            return text + "f";
        }
    }
}
