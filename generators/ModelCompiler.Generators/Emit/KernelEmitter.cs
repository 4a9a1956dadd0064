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
            var k = new KernelSet(s, g.Plan.Kernels);
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

        /// <summary>The kernels one declaration gets, as its <see cref="KernelPlan"/> says, with their geometry.</summary>
        private sealed partial class KernelSet
        {
            private readonly ModelSpec _spec;
            private readonly KernelPlan _plan;
            private readonly EquatableArray<NormKernel> _norms;
            private readonly int _tile;
            private readonly int _block;
            private readonly RowShape _hidden;
            private readonly int _expertWidth;
            private readonly MlaShape _mla;
            private readonly WarpGroupMlaShape _warpGroup;
            private readonly Fp8GemmShape _gemm;

            public KernelSet(ModelSpec spec, KernelPlan plan)
            {
                _spec = spec;
                _plan = plan;
                _norms = plan.Norms;
                _tile = plan.ActivationTile;
                _block = plan.WeightBlock;
                _hidden = plan.Hidden;
                _expertWidth = plan.ExpertWidth;
                _mla = plan.Mla;
                _warpGroup = plan.WarpGroupMla;
                _gemm = plan.Fp8Gemm;
            }

            private AttentionSpec Attention => _spec.Attention;

            private int HiddenLanesPerTile => _plan.HiddenLanesPerTile;

            private KernelLimit? HiddenQuantUnsupported => _plan["RmsNormQuantHidden"].Limit;

            private KernelLimit? ActQuantUnsupported => _plan["ActQuantHidden"].Limit;

            private KernelLimit? SwiGluQuantUnsupported => _plan["SwiGluQuantExpert"].Limit;

            private KernelLimit? RouterUnsupported => _plan["Route"].Limit;

            public IEnumerable<string> Inventory() => _plan.Kernels.Select(k => k.ToString());

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
