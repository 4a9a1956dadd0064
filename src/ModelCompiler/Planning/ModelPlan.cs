namespace ModelCompiler.Planning
{
    /// <summary>
    /// What the planner derives from a valid <see cref="ModelSpec"/>: parameter counts, KV-cache sizes, FLOPs, memory and the
    /// pipeline stage partition. Immutable and value-equatable, like the spec.
    /// </summary>
    public sealed record ModelPlan
    {
        /// <summary>Parameters of the main model (embedding, every layer, final norm, head); MTP modules are not included.</summary>
        public long TotalParameters { get; init; }

        /// <summary>Parameters a token passes through in the main model: everything but the routed experts it is not sent to.</summary>
        public long ActivatedParameters { get; init; }

        /// <summary>Parameters unique to the MTP modules (their embedding and head are shared with the main model and not counted).</summary>
        public long MtpParameters { get; init; }

        /// <summary>Parameters of the MTP modules a token passes through.</summary>
        public long MtpActivatedParameters { get; init; }

        /// <summary>The per-component parameter table, in model order.</summary>
        public EquatableArray<ParameterRow> Components { get; init; }

        /// <summary>Per layer: MLA latent cache elements per token, KeyValueLoraRank + QkRopeHeadDim.</summary>
        public long LatentCacheElementsPerLayer { get; init; }

        /// <summary>Per layer: elements per token of the "naive" MLA cache, full K (qk head dim) and V per head.</summary>
        public long NaiveCacheElementsPerLayer { get; init; }

        /// <summary>Per layer: elements per token of an equivalent standard multi-head cache, 2 × heads × QkNopeHeadDim.</summary>
        public long MhaCacheElementsPerLayer { get; init; }

        /// <summary>Bytes per token of the MLA latent cache over all layers, in BF16 (as DeepSeek counts it).</summary>
        public long KvCacheBytesPerToken { get; init; }

        /// <summary>Bytes per token of the naive per-head MLA cache over all layers, in BF16.</summary>
        public long NaiveKvCacheBytesPerToken { get; init; }

        /// <summary>Bytes per token of the equivalent standard MHA cache over all layers, in BF16.</summary>
        public long MhaKvCacheBytesPerToken { get; init; }

        /// <summary>Forward FLOPs per token at the spec's sequence length: 2 × activated non-embedding parameters plus causal attention.</summary>
        public long ForwardFlopsPerToken { get; init; }

        /// <summary>Training FLOPs per token: forward plus backward, 3 × forward.</summary>
        public long TrainingFlopsPerToken { get; init; }

        /// <summary>Bytes of master weights (main model and MTP), in the master-weight format.</summary>
        public long WeightBytes { get; init; }

        /// <summary>Bytes of weight gradients, accumulated in FP32.</summary>
        public long GradientBytes { get; init; }

        /// <summary>Bytes of AdamW's two moments, in the optimizer-moment format.</summary>
        public long OptimizerBytes { get; init; }

        /// <summary>Bytes of activations stored for backward per token (all layers, no recomputation), in the compute format.</summary>
        public long ActivationBytesPerToken { get; init; }

        /// <summary>The pipeline stages in order; one stage holding everything without [PipelineParallel].</summary>
        public EquatableArray<StagePlan> Stages { get; init; }

        /// <summary>Number of ranks the pipeline runs on (DualPipeV folds P stages onto P/2 ranks).</summary>
        public int Ranks { get; init; }

        /// <summary>How the routed experts spread over the expert-parallel ranks, or null without [ExpertParallel].</summary>
        public ExpertParallelPlan? ExpertParallel { get; init; }

        /// <summary>The GPU kernels the declaration gets: geometry, and why any are left out.</summary>
        public KernelPlan Kernels { get; init; } = new KernelPlan();

        /// <summary>Bytes per element of <paramref name="format"/> (FP8 counts its 1 byte; scales are not included).</summary>
        public static int BytesPerElement(NumericFormat format) => format switch
        {
            NumericFormat.Fp32 => 4,
            NumericFormat.Fp8E4M3 => 1,
            _ => 2,
        };
    }

    /// <summary>How the routed experts spread over the expert-parallel ranks.</summary>
    /// <param name="Ranks">Ranks the experts are spread over.</param>
    /// <param name="Nodes">Nodes the ranks make.</param>
    /// <param name="ExpertsPerRank">Routed experts each rank holds, per MoE layer.</param>
    /// <param name="ExpertParametersPerRank">Routed-expert parameters each rank holds over every MoE layer (MTP modules included).</param>
    /// <param name="MaxRanksPerToken">Most ranks one token's hidden state is dispatched to: min(K, ranks), and with the groups on the
    /// nodes at most GroupsPerToken nodes' ranks.</param>
    /// <param name="MaxNodesPerToken">Most nodes one token reaches: GroupsPerToken when the groups are the nodes, else min(K, nodes).</param>
    public sealed record ExpertParallelPlan(int Ranks, int Nodes, int ExpertsPerRank, long ExpertParametersPerRank, int MaxRanksPerToken, int MaxNodesPerToken);

    /// <summary>One row of the parameter table.</summary>
    /// <param name="Component">What it is, e.g. "MLA (per layer)".</param>
    /// <param name="PerInstance">Parameters of one instance.</param>
    /// <param name="Instances">How many instances the model has.</param>
    /// <param name="ActivatedInstances">How many instances one token passes through.</param>
    /// <param name="IsMtp">Whether the row belongs to the MTP modules.</param>
    public sealed record ParameterRow(string Component, long PerInstance, long Instances, long ActivatedInstances, bool IsMtp)
    {
        /// <summary>PerInstance × Instances.</summary>
        public long Total => PerInstance * Instances;

        /// <summary>PerInstance × ActivatedInstances.</summary>
        public long Activated => PerInstance * ActivatedInstances;
    }

    /// <summary>One pipeline stage: a contiguous run of layers and what else it holds.</summary>
    /// <param name="Index">Stage number, 0 = nearest the embedding.</param>
    /// <param name="FirstLayer">First layer of the stage.</param>
    /// <param name="LayerCount">Number of layers.</param>
    /// <param name="HasEmbedding">Holds the token embedding.</param>
    /// <param name="HasHead">Holds the final norm, the output head and the MTP modules.</param>
    /// <param name="Rank">The rank that runs the stage's forward in the downward direction.</param>
    /// <param name="MirrorRank">DualPipe's second rank holding a copy of the stage, or −1.</param>
    /// <param name="Parameters">Parameters held by the stage.</param>
    /// <param name="ForwardFlopsPerToken">Forward FLOPs per token of the stage (the cost the partition balances).</param>
    /// <param name="InFlightMicroBatches">Micro-batches whose activations the stage holds at the schedule's peak.</param>
    /// <param name="MemoryBytes">Weights, gradients, optimizer state and peak activations of the stage.</param>
    public sealed record StagePlan(int Index, int FirstLayer, int LayerCount, bool HasEmbedding, bool HasHead, int Rank, int MirrorRank,
        long Parameters, long ForwardFlopsPerToken, int InFlightMicroBatches, long MemoryBytes);
}
