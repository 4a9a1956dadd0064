using System;
using System.Collections.Generic;
using System.Linq;

namespace ModelCompiler.Planning
{
    /// <summary>The outcome of planning: the plan when the spec is valid, and every issue found (warnings may accompany a plan).</summary>
    /// <param name="Plan">The plan, or null when an error was found.</param>
    /// <param name="Issues">Errors and warnings.</param>
    public sealed record PlanResult(ModelPlan? Plan, EquatableArray<SpecIssue> Issues)
    {
        /// <summary>Whether an error prevented planning.</summary>
        public bool HasErrors => Issues.Any(i => i.Severity == RuleSeverity.Error);
    }

    /// <summary>
    /// Spec → validated plan. Pure and deterministic: no I/O, no clocks, no culture. The generator runs it at build time and
    /// the runtime and CLI run the same code, so parameter counts and checks have one source of truth.
    /// </summary>
    public static class ModelPlanner
    {
        /// <summary>Validates and plans <paramref name="spec"/>.</summary>
        public static PlanResult Plan(ModelSpec spec)
        {
            var issues = SpecValidator.Validate(spec).ToList();
            if (issues.Any(i => i.Severity == RuleSeverity.Error)) return new PlanResult(null, issues.ToEquatableArray());
            try
            {
                var plan = Build(spec);
                issues.AddRange(KernelPlanner.Issues(plan.Kernels));
                return new PlanResult(plan, issues.ToEquatableArray());
            }
            catch (OverflowException)
            {
                var rule = DiagnosticRule.ModelTooLarge;
                issues.Add(new SpecIssue(rule.Id, rule.Severity, SpecAttributes.Model, string.Empty,
                    new[] { "a parameter, FLOP or byte count exceeds 2^63" }.ToEquatableArray()));
                return new PlanResult(null, issues.ToEquatableArray());
            }
        }

        /// <summary>Plans <paramref name="spec"/>, throwing when it is invalid: for callers that hold a known-good spec.</summary>
        /// <exception cref="ArgumentException">The spec has errors; the message lists them.</exception>
        public static ModelPlan PlanOrThrow(ModelSpec spec)
        {
            var result = Plan(spec);
            return result.Plan ?? throw new ArgumentException("The model spec is invalid:\n  " + string.Join("\n  ", result.Issues.Select(i => i.ToString())), nameof(spec));
        }

        private static ModelPlan Build(ModelSpec s)
        {
            checked
            {
                var sizes = new Sizes(s);
                var rows = ParameterRows(s, sizes);
                long total = rows.Where(r => !r.IsMtp).Sum(r => r.Total);
                long activated = rows.Where(r => !r.IsMtp).Sum(r => r.Activated);
                long mtp = rows.Where(r => r.IsMtp).Sum(r => r.Total);
                long mtpActivated = rows.Where(r => r.IsMtp).Sum(r => r.Activated);

                var a = s.Attention;
                long latent = a.CacheWidth;
                long naive = (long)a.Heads * (a.QkHeadDim + a.ValueHeadDim);
                long mha = 2L * a.Heads * a.QkNopeHeadDim;
                const int bf16 = 2;

                long forward = 2 * (activated - sizes.Embedding) + s.Layers * sizes.AttentionCoreFlops;
                var precision = s.Precision;
                long allParameters = total + mtp;
                int computeBytes = ModelPlan.BytesPerElement(precision.Compute);
                long activationElements = 0;
                for (int layer = 0; layer < s.Layers; layer++) activationElements += sizes.ActivationElements(layer);

                var stages = PartitionStages(s, sizes, mtp);
                return new ModelPlan
                {
                    TotalParameters = total,
                    ActivatedParameters = activated,
                    MtpParameters = mtp,
                    MtpActivatedParameters = mtpActivated,
                    Components = rows.ToEquatableArray(),
                    LatentCacheElementsPerLayer = latent,
                    NaiveCacheElementsPerLayer = naive,
                    MhaCacheElementsPerLayer = mha,
                    KvCacheBytesPerToken = latent * s.Layers * bf16,
                    NaiveKvCacheBytesPerToken = naive * s.Layers * bf16,
                    MhaKvCacheBytesPerToken = mha * s.Layers * bf16,
                    ForwardFlopsPerToken = forward,
                    TrainingFlopsPerToken = 3 * forward,
                    WeightBytes = allParameters * ModelPlan.BytesPerElement(precision.MasterWeights),
                    GradientBytes = allParameters * 4,
                    OptimizerBytes = allParameters * 2 * ModelPlan.BytesPerElement(precision.OptimizerMoments),
                    ActivationBytesPerToken = activationElements * computeBytes,
                    Stages = stages.ToEquatableArray(),
                    Ranks = s.Pipeline is { Schedule: PipelineSchedule.DualPipeV } p ? p.Stages / 2 : s.Pipeline?.Stages ?? 1,
                    ExpertParallel = ExpertParallelOf(s, sizes),
                    Kernels = KernelPlanner.Plan(s),
                };
            }
        }

        private static ExpertParallelPlan? ExpertParallelOf(ModelSpec s, Sizes z)
        {
            if (s.ExpertParallel is not { } e || s.Moe is not { } m) return null;
            long experts = checked((s.MoeLayers + (s.Mtp?.Depth ?? 0)) * (long)m.RoutedExperts * z.Expert); // MTP modules are MoE blocks too
            int nodes = e.Nodes, ranksPerNode = Math.Min(e.Ranks, e.RanksPerNode);
            bool groupsAreNodes = nodes == 1 || m.ExpertGroups == nodes;
            int maxNodes = groupsAreNodes ? Math.Min(m.GroupsPerToken, nodes) : Math.Min(m.ActivatedExperts, nodes);
            int maxRanks = Math.Min(m.ActivatedExperts, Math.Min(e.Ranks, maxNodes * ranksPerNode));
            return new ExpertParallelPlan(e.Ranks, nodes, m.RoutedExperts / e.Ranks, experts / e.Ranks, maxRanks, maxNodes);
        }

        private static List<ParameterRow> ParameterRows(ModelSpec s, Sizes z)
        {
            checked
            {
                int dense = s.DenseLayerCount, moeLayers = s.MoeLayers;
                var rows = new List<ParameterRow>
                {
                    new("Token embedding", z.Embedding, 1, 1, false),
                    new("MLA attention (per layer)", z.Attention, s.Layers, s.Layers, false),
                    new("RMSNorm × 2 (per layer)", z.LayerNorms, s.Layers, s.Layers, false),
                };
                if (dense > 0) rows.Add(new("Dense SwiGLU FFN (per dense layer)", z.DenseFfn, dense, dense, false));
                if (s.Moe is { } m && moeLayers > 0)
                {
                    rows.Add(new("Routed expert", z.Expert, (long)moeLayers * m.RoutedExperts, (long)moeLayers * m.ActivatedExperts, false));
                    if (m.SharedExperts > 0) rows.Add(new("Shared experts (per MoE layer)", z.SharedExperts, moeLayers, moeLayers, false));
                    rows.Add(new("Router (per MoE layer)", z.Router, moeLayers, moeLayers, false));
                }

                rows.Add(new("Final RMSNorm", s.HiddenSize, 1, 1, false));
                if (!s.TieEmbeddings) rows.Add(new("Output head", z.Embedding, 1, 1, false));

                if (s.Mtp is { Depth: > 0 } mtp)
                {
                    int d = mtp.Depth;
                    rows.Add(new("MTP eh_proj + enorm, hnorm, head norm (per module)", z.MtpProjection, d, d, true));
                    rows.Add(new("MTP MLA attention + norms (per module)", z.Attention + z.LayerNorms, d, d, true));
                    if (s.Moe is { } mm)
                    {
                        rows.Add(new("MTP routed expert", z.Expert, (long)d * mm.RoutedExperts, (long)d * mm.ActivatedExperts, true));
                        rows.Add(new("MTP shared experts + router (per module)", z.SharedExperts + z.Router, d, d, true));
                    }
                    else
                    {
                        rows.Add(new("MTP dense SwiGLU FFN (per module)", z.DenseFfn, d, d, true));
                    }
                }

                return rows;
            }
        }

        /// <summary>
        /// Cuts the layers into contiguous stages that minimise the largest stage's forward cost (binary search on the cost
        /// bound with a greedy fill from the last stage, which also carries the final norm, the head and the MTP modules).
        /// </summary>
        private static List<StagePlan> PartitionStages(ModelSpec s, Sizes z, long mtpParameters)
        {
            checked
            {
                var pipeline = s.Pipeline;
                int stages = pipeline?.Stages ?? 1;
                double headCost = z.HeadFlops;
                double low = 0, high = headCost;
                for (int layer = 0; layer < s.Layers; layer++)
                {
                    low = Math.Max(low, z.LayerFlops(layer));
                    high += z.LayerFlops(layer);
                }

                low = Math.Max(low, headCost);
                for (int iteration = 0; iteration < 64 && high - low > 1e-9 * high; iteration++)
                {
                    double mid = (low + high) / 2;
                    if (Fill(s, z, stages, mid) is null) low = mid;
                    else high = mid;
                }

                int[] firstLayers = Fill(s, z, stages, high) ?? throw new InvalidOperationException("stage partition failed");
                var result = new List<StagePlan>(stages);
                long actBytesPerElement = ModelPlan.BytesPerElement(s.Precision.Compute);
                long stateBytesPerParameter = ModelPlan.BytesPerElement(s.Precision.MasterWeights) + 4 + (2 * ModelPlan.BytesPerElement(s.Precision.OptimizerMoments));
                for (int stage = 0; stage < stages; stage++)
                {
                    int first = firstLayers[stage];
                    int count = (stage + 1 < stages ? firstLayers[stage + 1] : s.Layers) - first;
                    bool hasEmbedding = stage == 0, hasHead = stage == stages - 1;
                    long parameters = 0, flops = 0, activations = 0;
                    for (int layer = first; layer < first + count; layer++)
                    {
                        parameters += z.LayerParameters(layer);
                        flops += z.LayerFlops(layer);
                        activations += z.ActivationElements(layer);
                    }

                    if (hasEmbedding) parameters += z.Embedding;
                    if (hasHead)
                    {
                        parameters += z.HeadParameters + mtpParameters;
                        flops += z.HeadFlops;
                    }

                    int inFlight = InFlight(pipeline, stage);
                    long memory = (parameters * stateBytesPerParameter) + (activations * actBytesPerElement * s.SequenceLength * inFlight);
                    var (rank, mirror) = Ranks(pipeline, stage);
                    result.Add(new StagePlan(stage, first, count, hasEmbedding, hasHead, rank, mirror, parameters, flops, inFlight, memory));
                }

                return result;
            }
        }

        /// <summary>Greedy fill from the last stage under <paramref name="bound"/>; returns each stage's first layer, or null if it does not fit.</summary>
        private static int[]? Fill(ModelSpec s, Sizes z, int stages, double bound)
        {
            var first = new int[stages];
            int next = s.Layers; // one past the last layer not yet placed
            for (int stage = stages - 1; stage >= 0; stage--)
            {
                double cost = stage == stages - 1 ? z.HeadFlops : 0;
                int start = next;
                // Leave at least one layer for each earlier stage; take at least one layer for this one.
                while (start > stage && (start == next || cost + z.LayerFlops(start - 1) <= bound))
                {
                    cost += z.LayerFlops(start - 1);
                    start--;
                }

                if (cost > bound) return null;
                if (stage == 0 && start > 0) return null;
                first[stage] = start;
                next = start;
            }

            return first;
        }

        private static int InFlight(PipelineSpec? pipeline, int stage) => pipeline switch
        {
            null => 1,
            { Schedule: PipelineSchedule.DualPipe or PipelineSchedule.DualPipeV } => (pipeline.Stages + 2) / 2, // P+1 per rank, two stages per rank
            _ => pipeline.Stages - stage,
        };

        private static (int Rank, int Mirror) Ranks(PipelineSpec? pipeline, int stage) => pipeline switch
        {
            null => (0, -1),
            { Schedule: PipelineSchedule.DualPipe } => (stage, pipeline.Stages - 1 - stage),
            { Schedule: PipelineSchedule.DualPipeV } => (Math.Min(stage, pipeline.Stages - 1 - stage), -1),
            _ => (stage, -1),
        };

        /// <summary>The per-instance sizes every count above is made of.</summary>
        private sealed class Sizes
        {
            private readonly ModelSpec _s;

            public Sizes(ModelSpec s)
            {
                checked
                {
                    _s = s;
                    long d = s.HiddenSize;
                    var a = s.Attention;
                    long h = a.Heads, qk = a.QkHeadDim;
                    long query = a.QueryLoraRank > 0
                        ? (d * a.QueryLoraRank) + a.QueryLoraRank + ((long)a.QueryLoraRank * h * qk) // q_a_proj, q_a_layernorm, q_b_proj
                        : d * h * qk;                                                                 // q_proj
                    Attention = query
                        + (d * a.CacheWidth)                                                  // kv_a_proj_with_mqa
                        + a.KeyValueLoraRank                                                 // kv_a_layernorm
                        + ((long)a.KeyValueLoraRank * h * (a.QkNopeHeadDim + a.ValueHeadDim)) // kv_b_proj
                        + (h * a.ValueHeadDim * d);                                          // o_proj
                    LayerNorms = 2 * d;
                    DenseFfn = 3 * d * s.DenseIntermediateSize;
                    Embedding = (long)s.VocabularySize * d;
                    HeadParameters = d + (s.TieEmbeddings ? 0 : Embedding);
                    AttentionCoreFlops = h * (qk + a.ValueHeadDim) * s.SequenceLength; // 2·h·(qk+v) per cached token × S/2 causal average
                    if (s.Moe is { } m)
                    {
                        Expert = 3 * d * m.ExpertIntermediateSize;
                        SharedExperts = m.SharedExperts * Expert;
                        Router = (m.RoutedExperts * d) + (m.HasSelectionBias ? m.RoutedExperts : 0);
                        MoeLayer = (m.RoutedExperts * Expert) + SharedExperts + Router;
                        MoeActivated = (m.ActivatedExperts * Expert) + SharedExperts + Router;
                    }

                    MtpProjection = (2 * d * d) + (3 * d);
                    long mtpFfn = s.Moe is null ? DenseFfn : MoeActivated;
                    long mtpModule = (2 * (MtpProjection + Attention + LayerNorms + mtpFfn + Embedding)) + AttentionCoreFlops;
                    HeadFlops = (2 * (d + Embedding)) + ((s.Mtp?.Depth ?? 0) * mtpModule);
                }
            }

            public long Attention { get; }

            public long LayerNorms { get; }

            public long DenseFfn { get; }

            public long Expert { get; }

            public long SharedExperts { get; }

            public long Router { get; }

            public long MoeLayer { get; }

            public long MoeActivated { get; }

            public long Embedding { get; }

            public long HeadParameters { get; }

            public long MtpProjection { get; }

            public long AttentionCoreFlops { get; }

            /// <summary>Forward FLOPs per token of the final norm, the head and the MTP modules (the last stage's extra cost).</summary>
            public long HeadFlops { get; }

            public long LayerParameters(int layer) => checked(Attention + LayerNorms + (_s.IsMoeLayer(layer) ? MoeLayer : DenseFfn));

            public long LayerFlops(int layer) => checked((2 * (Attention + LayerNorms + (_s.IsMoeLayer(layer) ? MoeActivated : DenseFfn))) + AttentionCoreFlops);

            /// <summary>
            /// Elements stored for backward per token by one layer without recomputation: the block inputs and norm outputs,
            /// the query latent and its norm, q, the KV latent and its norm, the up-projected K and V, the attention output,
            /// and the FFN's gate, up and product (for MoE: router logits, the K_r dispatched inputs and their hidden states).
            /// </summary>
            public long ActivationElements(int layer)
            {
                checked
                {
                    var a = _s.Attention;
                    long d = _s.HiddenSize, h = a.Heads;
                    long attention = (2 * d) + (a.QueryLoraRank > 0 ? 2L * a.QueryLoraRank : 0) + (h * a.QkHeadDim)
                        + a.CacheWidth + a.KeyValueLoraRank + (h * (a.QkNopeHeadDim + a.ValueHeadDim)) + (h * a.ValueHeadDim);
                    long ffn = 2 * d;
                    if (_s.IsMoeLayer(layer) && _s.Moe is { } m)
                    {
                        ffn += m.RoutedExperts + ((long)m.ActivatedExperts * (d + (3L * m.ExpertIntermediateSize))) + (3L * m.SharedExperts * m.ExpertIntermediateSize);
                    }
                    else
                    {
                        ffn += 3L * _s.DenseIntermediateSize;
                    }

                    return attention + ffn;
                }
            }
        }
    }
}
