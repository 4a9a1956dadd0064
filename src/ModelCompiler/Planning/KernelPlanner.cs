using System;
using System.Collections.Generic;
using System.Linq;

namespace ModelCompiler.Planning
{
    /// <summary>
    /// Spec → <see cref="KernelPlan"/>: which kernels a declaration gets, at which geometry, and why the others are left out.
    /// The one place these rules are stated; the kernel emitter and <c>modelc plan --kernels</c> read the result.
    /// </summary>
    public static class KernelPlanner
    {
        /// <summary>Plans the kernels of <paramref name="spec"/> (a valid spec).</summary>
        public static KernelPlan Plan(ModelSpec spec)
        {
            var a = spec.Attention;
            var precision = spec.Precision;
            int tile = precision.ActivationTile, block = precision.WeightBlock;
            bool fp8 = precision.Compute == NumericFormat.Fp8E4M3;
            int expertWidth = spec.Moe?.ExpertIntermediateSize ?? spec.DenseIntermediateSize;
            var hidden = new RowShape(spec.HiddenSize);
            var norms = new List<NormKernel> { new("Hidden", "the residual stream (input_layernorm, post_attention_layernorm, norm)", hidden) };
            if (a.QueryLoraRank > 0) norms.Add(new NormKernel("QueryLatent", "the query latent (q_a_layernorm)", new RowShape(a.QueryLoraRank)));
            norms.Add(new NormKernel("KeyValueLatent", "the key-value latent (kv_a_layernorm)", new RowShape(a.KeyValueLoraRank)));
            var router = spec.Moe is { } moe ? RouterShape.Of(moe) : null;
            var mla = MlaShape.Of(a);
            var warpGroup = WarpGroupMlaShape.Of(a);
            var gemm = new Fp8GemmShape(precision);

            var kernels = new List<KernelEntry>();
            foreach (var norm in norms)
            {
                var shape = norm.Shape;
                string reads = shape.Warps > 1 ? "on CUDA the row read twice, kept in L2 between the reads" : "row in registers";
                kernels.Add(new KernelEntry("RmsNorm" + norm.Name,
                    $"RMSNorm of {norm.Title}, {shape.Width} wide, {reads} ({shape.Group} threads × {shape.Slots} loads of {shape.Vector}).", null, true));
            }

            kernels.Add(new KernelEntry("RmsNormQuantHidden", $"RMSNorm fused with FP8 E4M3 1×{tile} quantisation.",
                hidden.LanesPerTile(tile) == 0
                    ? Model($"the hidden size {spec.HiddenSize} is not a multiple of the {tile}-wide activation tile held by a power-of-two run of lanes", "HiddenSize")
                    : null,
                fp8));
            bool actQuant = spec.HiddenSize % tile == 0 && tile % 16 == 0 && tile / 16 <= 32 && RowShape.IsPowerOfTwo(tile / 16);
            kernels.Add(new KernelEntry("ActQuantHidden", $"bf16 → FP8 E4M3 with one FP32 scale per 1×{tile} tile (act_quant).",
                actQuant ? null : Model($"the hidden size {spec.HiddenSize} and the {tile}-wide tile do not map onto lanes of 16 bf16 values", "HiddenSize"),
                fp8));
            kernels.Add(new KernelEntry("RotaryEmbedding", "interleaved RoPE on q_pe and k_pe from cos/sin tables.", null, true));
            kernels.Add(new KernelEntry("SwiGlu", "silu(a)·b.", null, true));
            bool swiGluQuant = expertWidth % tile == 0 && tile % 4 == 0 && tile / 4 <= 32 && RowShape.IsPowerOfTwo(tile / 4);
            kernels.Add(new KernelEntry("SwiGluQuantExpert", $"silu(a)·b fused with FP8 E4M3 1×{tile} quantisation, rows of {expertWidth}.",
                swiGluQuant ? null
                    : new KernelLimit($"the expert width {expertWidth} is not a multiple of the {tile}-wide activation tile",
                        spec.Moe is null ? SpecAttributes.Model : SpecAttributes.Moe, spec.Moe is null ? "DenseIntermediateSize" : "ExpertIntermediateSize"),
                fp8));
            kernels.Add(new KernelEntry("DequantizeWeight", $"FP8 E4M3 weights with {block}×{block} block scales → FP32.", null, true));
            kernels.Add(new KernelEntry("Route", "the whole MoE gate after its GEMM in one warp per token.",
                router is null ? new KernelLimit("the model has no MoE layer", SpecAttributes.Model, "Layers") : router.Unsupported,
                router is not null));
            kernels.Add(new KernelEntry("MlaDecode",
                "absorbed MLA decoding over the latent cache, split over the sequence, MlaCombine merging the splits; "
                + "a shared-memory kernel where no tensor-core variant below runs.", null, true));
            kernels.Add(new KernelEntry("MlaDecodeMma", $"MlaDecode on CUDA with tensor-core mma.sync, {mla.HeadsPerGroup} heads per group.", mla.Unsupported, true));
            kernels.Add(new KernelEntry("MlaDecodeWarpGroup",
                "MlaDecode on Hopper's warp-group MMA (wgmma, sm_90a), 64 heads per group, 64-token chunks copied asynchronously; "
                + "picked on compute capability 9.0.", warpGroup.Unsupported, true));
            kernels.Add(new KernelEntry("Fp8Gemm",
                $"the FP8 GEMM with 1×{tile} activation and {block}×{block} weight scales on Hopper's warp-group MMA (wgmma e4m3, sm_90a), "
                + $"promoted to FP32 every {precision.PromotionInterval} values of k.", gemm.Unsupported, fp8));

            return new KernelPlan
            {
                Norms = norms.ToEquatableArray(),
                Hidden = hidden,
                ExpertWidth = expertWidth,
                ActivationTile = tile,
                WeightBlock = block,
                HiddenLanesPerTile = hidden.LanesPerTile(tile),
                Router = router,
                Mla = mla,
                WarpGroupMla = warpGroup,
                Fp8Gemm = gemm,
                Kernels = kernels.ToEquatableArray(),
            };
        }

        /// <summary>MC4001 for each kernel the declaration would use but does not get.</summary>
        public static IEnumerable<SpecIssue> Issues(KernelPlan plan)
        {
            var rule = DiagnosticRule.KernelNotGenerated;
            return plan.Kernels.Where(k => k.Relevant && k.Limit is not null)
                .Select(k => new SpecIssue(rule.Id, rule.Severity, k.Limit!.Attribute, k.Limit.Argument, new[] { k.Name, k.Limit.Reason }.ToEquatableArray()));
        }

        private static KernelLimit Model(string reason, string argument) => new(reason, SpecAttributes.Model, argument);
    }
}
