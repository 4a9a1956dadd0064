using System.Collections.Generic;
using System.Linq;
using System.Text;
using ModelCompiler.Generators.Model;
using ModelCompiler.Planning;
using static ModelCompiler.Generators.Emit.Literals;

namespace ModelCompiler.Generators.Emit
{
    /// <summary>
    /// Builds the plain-text narration of a model that the generated doc comments show on F12: the layer-by-layer architecture
    /// with Hugging Face tensor names and shapes, the parameter table and the stage partition.
    /// </summary>
    internal static class Explain
    {
        public static string Architecture(ModelGeneration g)
        {
            var s = g.Spec;
            var a = s.Attention;
            var text = new StringBuilder();
            void Line(int indent, string line) => text.Append(' ', indent * 4).Append("○ ").Append(line).Append('\n');
            string norm(long width) => "RMSNorm(" + Int(width) + ")";
            string d = Int(s.HiddenSize);

            Line(0, $"input_ids [T] → embed_tokens [{Int(s.VocabularySize)}, {d}] → h [T, {d}]");
            foreach (var (first, count, moe) in Runs(s))
            {
                string range = count == 1 ? $"layer {first}" : $"layers {first}–{first + count - 1} ({count}×)";
                Line(0, $"{range}, {(moe ? "MoE" : "dense")} block:");
                Line(1, $"input_layernorm {norm(s.HiddenSize)} → self_attn: MLA (below) → + residual");
                Line(1, $"post_attention_layernorm {norm(s.HiddenSize)} → mlp: {(moe ? "DeepSeekMoE (below)" : DenseFfn(s))} → + residual");
            }

            Line(0, $"norm {norm(s.HiddenSize)} → {(s.TieEmbeddings ? "embed_tokensᵀ (tied)" : $"lm_head [{Int(s.VocabularySize)}, {d}]")} → logits [T, {Int(s.VocabularySize)}]");
            if (s.Mtp is { Depth: > 0 } mtp)
            {
                for (int k = 1; k <= mtp.Depth; k++)
                {
                    Line(0, $"MTP module {k} (model.layers.{s.Layers + k - 1}), predicts token i+{k + 1}, loss weight λ/D = {Display(mtp.LossWeight / mtp.Depth)}:");
                    Line(1, $"[enorm(embed_tokens(t(i+{k}))) ; hnorm(h{k - 1}(i))] → eh_proj [{d}, {Int(2L * s.HiddenSize)}] → {(s.Moe is null ? "dense" : "MoE")} block → shared_head.norm → lm_head (shared)");
                }
            }

            text.Append('\n');
            Line(0, $"self_attn, Multi-Head Latent Attention with {a.Heads} heads:");
            int qk = a.QkHeadDim;
            string qShape = $"q [T, {a.Heads}, {qk}] = q_nope {a.QkNopeHeadDim} ‖ q_pe {a.QkRopeHeadDim}";
            Line(1, a.QueryLoraRank > 0
                ? $"q_a_proj [{a.QueryLoraRank}, {d}] → q_a_layernorm {norm(a.QueryLoraRank)} → q_b_proj [{Int((long)a.Heads * qk)}, {a.QueryLoraRank}] → {qShape}"
                : $"q_proj [{Int((long)a.Heads * qk)}, {d}] → {qShape}");
            Line(1, $"kv_a_proj_with_mqa [{a.CacheWidth}, {d}] → c_kv [T, {a.KeyValueLoraRank}] → kv_a_layernorm {norm(a.KeyValueLoraRank)}; k_pe [T, {a.QkRopeHeadDim}], one rotary key shared by all heads");
            Line(1, Rope(s));
            Line(1, $"kv_b_proj [{Int((long)a.Heads * (a.QkNopeHeadDim + a.ValueHeadDim))}, {a.KeyValueLoraRank}] → k_nope [T, {a.Heads}, {a.QkNopeHeadDim}], v [T, {a.Heads}, {a.ValueHeadDim}] (naive); absorbed: W_UK folds into q, W_UV applies after attention");
            Line(1, $"softmax(q·kᵀ × {Display(RopeMath.SoftmaxScale(s))}) · v → o [T, {a.Heads} × {a.ValueHeadDim}] → o_proj [{d}, {Int((long)a.Heads * a.ValueHeadDim)}]");
            Line(1, $"KV cache per token and layer: c_kv {a.KeyValueLoraRank} + k_pe {a.QkRopeHeadDim} = {Int(g.Plan.LatentCacheElementsPerLayer)} values (naive: {Int(g.Plan.NaiveCacheElementsPerLayer)})");

            if (s.Moe is { } m && s.MoeLayers > 0)
            {
                text.Append('\n');
                Line(0, $"mlp, DeepSeekMoE with {m.RoutedExperts} routed and {m.SharedExperts} shared experts:");
                Line(1, $"gate [{m.RoutedExperts}, {d}] → {(m.Scoring == ExpertScoring.Sigmoid ? "sigmoid" : "softmax")} scores" + (m.HasSelectionBias ? " + e_score_correction_bias (selection only, moved ±γ = " + Display(m.BiasUpdateSpeed) + " per step)" : string.Empty));
                if (m.ExpertGroups > 1)
                {
                    Line(1, $"{m.ExpertGroups} groups of {m.RoutedExperts / m.ExpertGroups} experts scored by the {(m.HasSelectionBias ? "sum of the top-2 biased scores" : "best score")}; keep {m.GroupsPerToken}; others masked with −∞");
                }

                Line(1, $"top-{m.ActivatedExperts} experts; weights = their {(m.HasSelectionBias ? "unbiased " : string.Empty)}scores{(m.NormalizeTopK ? ", normalised to sum 1" : string.Empty)}, × {Display(m.RoutedScalingFactor)}");
                Line(1, $"experts.{{0..{m.RoutedExperts - 1}}}: SwiGLU gate_proj, up_proj [{m.ExpertIntermediateSize}, {d}], down_proj [{d}, {m.ExpertIntermediateSize}], each on the tokens routed to it");
                if (m.SharedExperts > 0)
                {
                    int width = m.SharedExperts * m.ExpertIntermediateSize;
                    Line(1, $"shared_experts: one SwiGLU of width {m.SharedExperts} × {m.ExpertIntermediateSize} = {width} on every token");
                }
            }

            return text.ToString().TrimEnd('\n');
        }

        public static string Parameters(ModelPlan plan)
        {
            var rows = plan.Components;
            int width = System.Math.Max(rows.Max(r => r.Component.Length), "activated per token".Length) + 2;
            var text = new StringBuilder();
            text.Append("component".PadRight(width)).Append("per instance".PadLeft(18)).Append("instances".PadLeft(12)).Append("total".PadLeft(20)).Append("activated".PadLeft(20)).Append('\n');
            foreach (var row in rows)
            {
                text.Append(row.Component.PadRight(width)).Append(Grouped(row.PerInstance).PadLeft(18)).Append(Grouped(row.Instances).PadLeft(12))
                    .Append(Grouped(row.Total).PadLeft(20)).Append(Grouped(row.Activated).PadLeft(20)).Append('\n');
            }

            text.Append("main model".PadRight(width + 30)).Append(Grouped(plan.TotalParameters).PadLeft(20)).Append(Grouped(plan.ActivatedParameters).PadLeft(20)).Append('\n');
            if (plan.MtpParameters > 0)
            {
                text.Append("MTP modules (embedding, head shared)".PadRight(width + 30)).Append(Grouped(plan.MtpParameters).PadLeft(20)).Append(Grouped(plan.MtpActivatedParameters).PadLeft(20)).Append('\n');
            }

            return text.ToString().TrimEnd('\n');
        }

        public static string Stages(ModelGeneration g)
        {
            var text = new StringBuilder();
            text.Append("stage  rank(s)  layers        parameters           forward FLOPs/token  peak memory\n");
            foreach (var st in g.Plan.Stages)
            {
                string ranks = st.MirrorRank >= 0 ? $"{st.Rank}, {st.MirrorRank}" : Int(st.Rank);
                string layers = st.LayerCount == 1 ? Int(st.FirstLayer) : $"{st.FirstLayer}–{st.FirstLayer + st.LayerCount - 1}";
                string extras = (st.HasEmbedding ? " +embed" : string.Empty) + (st.HasHead ? " +head" : string.Empty);
                text.Append(Int(st.Index).PadRight(7)).Append(ranks.PadRight(9)).Append((layers + extras).PadRight(14))
                    .Append(Units.Count(st.Parameters).PadLeft(10)).Append(Units.Flops(st.ForwardFlopsPerToken).PadLeft(21))
                    .Append(Units.Bytes(st.MemoryBytes).PadLeft(22)).Append('\n');
            }

            return text.ToString().TrimEnd('\n');
        }

        private static string DenseFfn(ModelSpec s) =>
            $"SwiGLU gate_proj, up_proj [{s.DenseIntermediateSize}, {s.HiddenSize}], down_proj [{s.HiddenSize}, {s.DenseIntermediateSize}]";

        private static string Rope(ModelSpec s)
        {
            var a = s.Attention;
            string basic = $"RoPE on q_pe and k_pe in interleaved pairs (2i, 2i+1), θ = {Display(s.RopeTheta)}";
            if (s.Yarn is not { } y) return basic;
            var (low, high) = RopeMath.CorrectionRange(a.QkRopeHeadDim, s.RopeTheta, y);
            return basic + $"; YaRN ×{Display(y.Factor)} over {y.OriginalContextLength}: pairs ≤ {low} unchanged, ≥ {high} ÷ {Display(y.Factor)}, blended between; mscale² = {Display(System.Math.Pow(RopeMath.MScale(y.Factor, y.MScale), 2))}";
        }

        /// <summary>Consecutive runs of layers of one kind: (first layer, count, is MoE).</summary>
        private static IEnumerable<(int First, int Count, bool Moe)> Runs(ModelSpec s)
        {
            int dense = s.DenseLayerCount;
            if (dense > 0) yield return (0, dense, false);
            if (s.MoeLayers > 0) yield return (dense, s.MoeLayers, true);
        }
    }
}
