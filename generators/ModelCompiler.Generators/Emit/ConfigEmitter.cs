using System.Linq;
using ModelCompiler.Generators.Model;
using ModelCompiler.Planning;
using static ModelCompiler.Generators.Emit.Literals;

namespace ModelCompiler.Generators.Emit
{
    /// <summary>
    /// Emits <c>{Model}.Config.g.cs</c>: every declared dimension as a constant (<c>Config</c>), the plan as constants
    /// (<c>Plan</c>), the declaration as a runtime <see cref="ModelSpec"/> (<c>Spec</c>), and a narrated architecture on the class.
    /// </summary>
    internal static class ConfigEmitter
    {
        public static GeneratedFile Emit(ModelGeneration g)
        {
            var w = new IndentedWriter();
            var h = g.Hierarchy;
            Headers.Write(w, h);
            using (Headers.OpenHierarchy(w, h))
            {
                WriteClassRemarks(w, g);
                using (w.WriteBlock("partial class " + h.Name))
                {
                    WriteConfig(w, g.Spec);
                    w.WriteLine();
                    WritePlan(w, g);
                    w.WriteLine();
                    WriteSpec(w, g.Spec);
                }
            }

            return new GeneratedFile(h.FilenameHint + ".Config.g.cs", w.ToString());
        }

        private static void WriteClassRemarks(IndentedWriter w, ModelGeneration g)
        {
            var s = g.Spec;
            var p = g.Plan;
            w.WriteLine("/// <remarks>");
            w.WriteLine($"/// <para><b>{g.Hierarchy.Name}</b>, generated from its attributes: {s.Layers} layers ({s.DenseLayerCount} dense, {s.MoeLayers} MoE), d = {s.HiddenSize}, vocabulary {Grouped(s.VocabularySize)}; {Units.Count(p.TotalParameters)} parameters, {Units.Count(p.ActivatedParameters)} activated per token.</para>");
            w.WriteLine("/// <code>");
            w.WriteDocLines(Xml.Escape(Explain.Architecture(g)));
            w.WriteLine("/// </code>");
            w.WriteLine("/// <para>Parameters:</para>");
            w.WriteLine("/// <code>");
            w.WriteDocLines(Xml.Escape(Explain.Parameters(p)));
            w.WriteLine("/// </code>");
            double naiveRatio = (double)p.NaiveKvCacheBytesPerToken / p.KvCacheBytesPerToken;
            double mhaRatio = (double)p.MhaKvCacheBytesPerToken / p.KvCacheBytesPerToken;
            w.WriteLine($"/// <para>KV cache per token, BF16, all {s.Layers} layers: MLA latent {Grouped(p.KvCacheBytesPerToken)} B; naive per-head MLA {Grouped(p.NaiveKvCacheBytesPerToken)} B ({naiveRatio:0.0}×); standard MHA {Grouped(p.MhaKvCacheBytesPerToken)} B ({mhaRatio:0.0}×).</para>");
            w.WriteLine($"/// <para>FLOPs per token at sequence length {s.SequenceLength}: forward {Units.Flops(p.ForwardFlopsPerToken)}, training {Units.Flops(p.TrainingFlopsPerToken)}. Memory: weights {Units.Bytes(p.WeightBytes)} ({s.Precision.MasterWeights}), gradients {Units.Bytes(p.GradientBytes)} (FP32), AdamW moments {Units.Bytes(p.OptimizerBytes)} ({s.Precision.OptimizerMoments}), activations {Units.Bytes(p.ActivationBytesPerToken)} per token ({s.Precision.Compute}).</para>");
            if (s.Pipeline is { } pipeline)
            {
                w.WriteLine($"/// <para>Pipeline: {pipeline.Stages} stages on {p.Ranks} ranks, {pipeline.Schedule}, {pipeline.MicroBatches} micro-batches:</para>");
                w.WriteLine("/// <code>");
                w.WriteDocLines(Xml.Escape(Explain.Stages(g)));
                w.WriteLine("/// </code>");
            }

            if (p.ExpertParallel is { } ep)
            {
                w.WriteLine($"/// <para>Expert parallelism: {ep.ExpertsPerRank} routed experts per rank over {ep.Ranks} ranks in {ep.Nodes} nodes, {Units.Count(ep.ExpertParametersPerRank)} expert parameters per rank; a token's hidden state reaches at most {ep.MaxRanksPerToken} ranks on {ep.MaxNodesPerToken} nodes.</para>");
            }

            w.WriteLine("/// </remarks>");
        }

        private static void WriteConfig(IndentedWriter w, ModelSpec s)
        {
            w.WriteSummary("The declared dimensions and settings, as compile-time constants.");
            w.WriteLine(Headers.GeneratedCode);
            using (w.WriteBlock("public static class Config"))
            {
                var a = s.Attention;
                Const(w, "int", "VocabularySize", Int(s.VocabularySize), "Number of token ids.");
                Const(w, "int", "HiddenSize", Int(s.HiddenSize), "Width d of the residual stream.");
                Const(w, "int", "Layers", Int(s.Layers), "Number of decoder blocks, MTP modules not counted.");
                Const(w, "int", "DenseLayers", Int(s.DenseLayerCount), "Leading layers with a dense SwiGLU FFN.");
                Const(w, "int", "MoeLayers", Int(s.MoeLayers), "Layers with a Mixture-of-Experts FFN (from DenseLayers on).");
                Const(w, "int", "DenseIntermediateSize", Int(s.DenseIntermediateSize), "Intermediate width of the dense SwiGLU FFN.");
                Const(w, "double", "RmsNormEpsilon", Double(s.RmsNormEpsilon), "Epsilon of every RMSNorm.");
                Const(w, "double", "RopeTheta", Double(s.RopeTheta), "RoPE base θ.");
                Const(w, "bool", "TieEmbeddings", Bool(s.TieEmbeddings), "Whether the embedding and output head share one matrix.");
                Const(w, "int", "SequenceLength", Int(s.SequenceLength), "Training sequence length the plan assumes.");
                Const(w, "int", "Heads", Int(a.Heads), "Query heads n_h.");
                Const(w, "int", "QueryLoraRank", Int(a.QueryLoraRank), a.QueryLoraRank > 0 ? "Width of the compressed query latent." : "0: queries are projected directly (q_proj).");
                Const(w, "int", "KeyValueLoraRank", Int(a.KeyValueLoraRank), "Width d_c of the compressed KV latent.");
                Const(w, "int", "QkNopeHeadDim", Int(a.QkNopeHeadDim), "Per-head non-rotary query/key width.");
                Const(w, "int", "QkRopeHeadDim", Int(a.QkRopeHeadDim), "Per-head rotary width, also the width of the shared rotary key.");
                Const(w, "int", "QkHeadDim", Int(a.QkHeadDim), "Per-head query/key width: QkNopeHeadDim + QkRopeHeadDim.");
                Const(w, "int", "ValueHeadDim", Int(a.ValueHeadDim), "Per-head value width.");
                Const(w, "double", "SoftmaxScale", Double(RopeMath.SoftmaxScale(s)), s.Yarn is null ? "Attention softmax scale 1/√QkHeadDim." : "Attention softmax scale 1/√QkHeadDim × mscale² (YaRN).");
                if (s.Yarn is { } y)
                {
                    var (low, high) = RopeMath.CorrectionRange(a.QkRopeHeadDim, s.RopeTheta, y);
                    Const(w, "double", "YarnFactor", Double(y.Factor), "YaRN context extension factor s.");
                    Const(w, "int", "YarnOriginalContextLength", Int(y.OriginalContextLength), "YaRN's original context length.");
                    Const(w, "double", "YarnBetaFast", Double(y.BetaFast), "YaRN β_fast.");
                    Const(w, "double", "YarnBetaSlow", Double(y.BetaSlow), "YaRN β_slow.");
                    Const(w, "double", "YarnMScale", Double(y.MScale), "YaRN mscale coefficient m.");
                    Const(w, "double", "YarnMScaleAllDim", Double(y.MScaleAllDim), "Hugging Face's mscale_all_dim.");
                    Const(w, "int", "YarnLowPair", Int(low), "Frequency pairs up to this index keep their frequency.");
                    Const(w, "int", "YarnHighPair", Int(high), "Frequency pairs from this index on are divided by the factor.");
                }

                if (s.Moe is { } m)
                {
                    Const(w, "int", "RoutedExperts", Int(m.RoutedExperts), "Routed experts N_r per MoE layer.");
                    Const(w, "int", "ActivatedExperts", Int(m.ActivatedExperts), "Routed experts per token K_r.");
                    Const(w, "int", "SharedExperts", Int(m.SharedExperts), "Shared experts N_s per MoE layer.");
                    Const(w, "int", "ExpertIntermediateSize", Int(m.ExpertIntermediateSize), "Intermediate width of one expert.");
                    Const(w, "int", "ExpertGroups", Int(m.ExpertGroups), "Expert groups for group-limited routing.");
                    Const(w, "int", "ExpertsPerGroup", Int(m.RoutedExperts / m.ExpertGroups), "Experts in one group.");
                    Const(w, "int", "GroupsPerToken", Int(m.GroupsPerToken), "Groups a token may route to.");
                    Const(w, "global::ModelCompiler.ExpertScoring", "Scoring", Enum(m.Scoring), "Affinity function.");
                    Const(w, "double", "RoutedScalingFactor", Double(m.RoutedScalingFactor), "Multiplier of the routed gate weights.");
                    Const(w, "bool", "NormalizeTopK", Bool(m.NormalizeTopK), "Whether the selected weights are renormalised to sum 1.");
                    Const(w, "global::ModelCompiler.LoadBalancing", "Balancing", Enum(m.Balancing), "Load-balancing strategy.");
                    Const(w, "bool", "HasSelectionBias", Bool(m.HasSelectionBias), "Whether the router has a selection-only bias (e_score_correction_bias).");
                    Const(w, "double", "BiasUpdateSpeed", Double(m.BiasUpdateSpeed), "Bias update speed γ.");
                    Const(w, "double", "SequenceBalanceLossWeight", Double(m.SequenceBalanceLossWeight), "α of the sequence-wise balance loss.");
                    Const(w, "double", "ExpertBalanceLossWeight", Double(m.ExpertBalanceLossWeight), "α1 of the expert-level balance loss.");
                    Const(w, "double", "DeviceBalanceLossWeight", Double(m.DeviceBalanceLossWeight), "α2 of the device-level balance loss.");
                    Const(w, "double", "CommunicationBalanceLossWeight", Double(m.CommunicationBalanceLossWeight), "α3 of the communication balance loss.");
                }

                if (s.Mtp is { } mtp)
                {
                    Const(w, "int", "MtpDepth", Int(mtp.Depth), "Sequential MTP modules D.");
                    Const(w, "double", "MtpLossWeight", Double(mtp.LossWeight), "MTP loss weight λ.");
                }

                var pr = s.Precision;
                Const(w, "global::ModelCompiler.NumericFormat", "ComputeFormat", Enum(pr.Compute), "Format of GEMM inputs.");
                Const(w, "int", "ActivationTile", Int(pr.ActivationTile), "Channels per FP8 activation tile.");
                Const(w, "int", "WeightBlock", Int(pr.WeightBlock), "Edge of an FP8 weight block.");
                Const(w, "int", "PromotionInterval", Int(pr.PromotionInterval), "K elements between FP32 promotions.");
                Const(w, "global::ModelCompiler.NumericFormat", "MasterWeightFormat", Enum(pr.MasterWeights), "Format of the master weights.");
                Const(w, "global::ModelCompiler.NumericFormat", "OptimizerMomentFormat", Enum(pr.OptimizerMoments), "Format of AdamW's moments.");
                if (s.Pipeline is { } pp)
                {
                    Const(w, "int", "PipelineStages", Int(pp.Stages), "Pipeline stages P.");
                    Const(w, "global::ModelCompiler.PipelineSchedule", "PipelineSchedule", Enum(pp.Schedule), "Pipeline schedule.");
                    Const(w, "int", "MicroBatches", Int(pp.MicroBatches), "Micro-batches per optimizer step.");
                }

                if (s.ExpertParallel is { } ep)
                {
                    Const(w, "int", "ExpertParallelRanks", Int(ep.Ranks), "Ranks the routed experts are spread over.");
                    Const(w, "int", "RanksPerNode", Int(ep.RanksPerNode), "Ranks per node.");
                }

                if (s.Grpo is { } grpo)
                {
                    Const(w, "int", "GrpoGroupSize", Int(grpo.GroupSize), "Completions per prompt G.");
                    Const(w, "double", "GrpoEpsilon", Double(grpo.Epsilon), "Lower clip range ε.");
                    Const(w, "double", "GrpoEpsilonHigh", Double(grpo.EffectiveEpsilonHigh), "Upper clip range ε_high in effect.");
                    Const(w, "double", "GrpoBeta", Double(grpo.Beta), "KL weight β.");
                    Const(w, "global::ModelCompiler.GrpoLossAggregation", "GrpoLossAggregation", Enum(grpo.LossAggregation), "Loss aggregation.");
                    Const(w, "global::ModelCompiler.RewardScaling", "GrpoRewardScaling", Enum(grpo.RewardScaling), "Advantage scaling.");
                    Const(w, "int", "GrpoUpdatesPerRollout", Int(grpo.UpdatesPerRollout), "Updates per rollout μ.", last: true);
                }
                else
                {
                    w.WriteLine("// (no [Grpo] declared)");
                }
            }
        }

        private static void WritePlan(IndentedWriter w, ModelGeneration g)
        {
            var p = g.Plan;
            w.WriteSummary("The plan of the declaration: parameter counts, KV cache, FLOPs, memory and the pipeline stages, computed at build time.");
            w.WriteLine(Headers.GeneratedCode);
            using (w.WriteBlock("public static class Plan"))
            {
                Const(w, "long", "TotalParameters", Int(p.TotalParameters), $"Parameters of the main model: {Grouped(p.TotalParameters)}.");
                Const(w, "long", "ActivatedParameters", Int(p.ActivatedParameters), $"Parameters a token passes through: {Grouped(p.ActivatedParameters)}.");
                Const(w, "long", "MtpParameters", Int(p.MtpParameters), "Parameters unique to the MTP modules (embedding and head shared).");
                Const(w, "long", "MtpActivatedParameters", Int(p.MtpActivatedParameters), "MTP parameters a token passes through.");
                Const(w, "long", "LatentCacheElementsPerLayer", Int(p.LatentCacheElementsPerLayer), "MLA latent cache values per token and layer: KeyValueLoraRank + QkRopeHeadDim.");
                Const(w, "long", "KvCacheBytesPerToken", Int(p.KvCacheBytesPerToken), "Bytes per token of the MLA latent cache over all layers in BF16.");
                Const(w, "long", "NaiveKvCacheBytesPerToken", Int(p.NaiveKvCacheBytesPerToken), "Bytes per token of the naive per-head MLA cache over all layers in BF16.");
                Const(w, "long", "MhaKvCacheBytesPerToken", Int(p.MhaKvCacheBytesPerToken), "Bytes per token of an equivalent standard MHA cache over all layers in BF16.");
                Const(w, "long", "ForwardFlopsPerToken", Int(p.ForwardFlopsPerToken), "Forward FLOPs per token at Config.SequenceLength.");
                Const(w, "long", "TrainingFlopsPerToken", Int(p.TrainingFlopsPerToken), "Training FLOPs per token (3 × forward).");
                Const(w, "long", "WeightBytes", Int(p.WeightBytes), "Bytes of master weights, MTP included.");
                Const(w, "long", "GradientBytes", Int(p.GradientBytes), "Bytes of FP32 weight gradients.");
                Const(w, "long", "OptimizerBytes", Int(p.OptimizerBytes), "Bytes of AdamW's two moments.");
                Const(w, "long", "ActivationBytesPerToken", Int(p.ActivationBytesPerToken), "Bytes of activations stored for backward per token, without recomputation.");
                Const(w, "int", "Stages", Int(p.Stages.Count), "Pipeline stages.");
                Const(w, "int", "Ranks", Int(p.Ranks), "Ranks the pipeline runs on.");
                if (p.ExpertParallel is { } ep)
                {
                    Const(w, "int", "ExpertsPerRank", Int(ep.ExpertsPerRank), "Routed experts each expert-parallel rank holds, per MoE layer.");
                    Const(w, "long", "ExpertParametersPerRank", Int(ep.ExpertParametersPerRank), "Routed-expert parameters each expert-parallel rank holds, MTP included.");
                    Const(w, "int", "MaxNodesPerToken", Int(ep.MaxNodesPerToken), "Most nodes one token's hidden state is dispatched to.");
                }

                w.WriteSummary("First layer of each stage.");
                w.WriteLine("public static global::System.ReadOnlySpan<int> StageFirstLayers => new int[] { " + string.Join(", ", p.Stages.Select(st => Int(st.FirstLayer))) + " };");
                w.WriteLine();
                w.WriteSummary("Layers of each stage.");
                w.WriteLine("public static global::System.ReadOnlySpan<int> StageLayerCounts => new int[] { " + string.Join(", ", p.Stages.Select(st => Int(st.LayerCount))) + " };");
            }
        }

        private static void WriteSpec(IndentedWriter w, ModelSpec s)
        {
            const string Ns = "global::ModelCompiler.Planning.";
            w.WriteSummary("The declaration as a runtime spec: ModelCompiler.Planning.ModelPlanner.Plan(Spec) reproduces Plan, and the runtime layers are built from it.");
            w.WriteLine(Headers.GeneratedCode);
            w.WriteLine("public static " + Ns + "ModelSpec Spec { get; } = new " + Ns + "ModelSpec");
            w.WriteLine("{");
            var a = s.Attention;
            var lines = new System.Collections.Generic.List<string>
            {
                $"VocabularySize = {Int(s.VocabularySize)}",
                $"HiddenSize = {Int(s.HiddenSize)}",
                $"Layers = {Int(s.Layers)}",
                $"DenseLayers = {Int(s.DenseLayers)}",
                $"DenseIntermediateSize = {Int(s.DenseIntermediateSize)}",
                $"RmsNormEpsilon = {Double(s.RmsNormEpsilon)}",
                $"RopeTheta = {Double(s.RopeTheta)}",
                $"TieEmbeddings = {Bool(s.TieEmbeddings)}",
                $"SequenceLength = {Int(s.SequenceLength)}",
                $"Attention = new {Ns}AttentionSpec({Int(a.Heads)}, {Int(a.KeyValueLoraRank)}, {Int(a.QueryLoraRank)}, {Int(a.QkNopeHeadDim)}, {Int(a.QkRopeHeadDim)}, {Int(a.ValueHeadDim)})",
            };
            if (s.Yarn is { } y) lines.Add($"Yarn = new {Ns}YarnSpec({Double(y.Factor)}, {Int(y.OriginalContextLength)}, {Double(y.BetaFast)}, {Double(y.BetaSlow)}, {Double(y.MScale)}, {Double(y.MScaleAllDim)})");
            if (s.Moe is { } m)
            {
                lines.Add($"Moe = new {Ns}MoeSpec({Int(m.RoutedExperts)}, {Int(m.ActivatedExperts)}, {Int(m.ExpertIntermediateSize)}, {Int(m.SharedExperts)}, {Enum(m.Scoring)}, "
                    + $"{Int(m.ExpertGroups)}, {Int(m.GroupsPerToken)}, {Double(m.RoutedScalingFactor)}, {Bool(m.NormalizeTopK)}, {Enum(m.Balancing)}, {Double(m.BiasUpdateSpeed)}, "
                    + $"{Double(m.SequenceBalanceLossWeight)}, {Double(m.ExpertBalanceLossWeight)}, {Double(m.DeviceBalanceLossWeight)}, {Double(m.CommunicationBalanceLossWeight)})");
            }

            if (s.Mtp is { } mtp) lines.Add($"Mtp = new {Ns}MtpSpec({Int(mtp.Depth)}, {Double(mtp.LossWeight)})");
            var p = s.Precision;
            lines.Add($"Precision = new {Ns}PrecisionSpec({Enum(p.Compute)}, {Int(p.ActivationTile)}, {Int(p.WeightBlock)}, {Int(p.PromotionInterval)}, {Enum(p.MasterWeights)}, {Enum(p.OptimizerMoments)})");
            if (s.Pipeline is { } pp) lines.Add($"Pipeline = new {Ns}PipelineSpec({Int(pp.Stages)}, {Enum(pp.Schedule)}, {Int(pp.MicroBatches)})");
            if (s.ExpertParallel is { } ep) lines.Add($"ExpertParallel = new {Ns}ExpertParallelSpec({Int(ep.Ranks)}, {Int(ep.RanksPerNode)})");
            if (s.Grpo is { } g)
            {
                lines.Add($"Grpo = new {Ns}GrpoSpec({Int(g.GroupSize)}, {Double(g.Epsilon)}, {Double(g.EpsilonHigh)}, {Double(g.Beta)}, {Enum(g.LossAggregation)}, {Enum(g.RewardScaling)}, {Int(g.UpdatesPerRollout)})");
            }

            foreach (string line in lines) w.WriteLine("    " + line + ",");
            w.WriteLine("};");
        }

        private static void Const(IndentedWriter w, string type, string name, string value, string summary, bool last = false)
        {
            w.WriteSummary(summary);
            w.WriteLine($"public const {type} {name} = {value};");
            if (!last) w.WriteLine();
        }
    }
}
