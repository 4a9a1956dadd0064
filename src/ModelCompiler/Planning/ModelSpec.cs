namespace ModelCompiler.Planning
{
    // Equality contract: every spec below is an immutable record of numbers, booleans, enums and other such records,
    // so two specs of the same declaration compare equal. The generator caches on that equality: a spec must never
    // hold a Roslyn symbol, syntax node, location or array (a test walks the graph to prove it).

    /// <summary>A whole model declaration: what the attributes on one class say, with every default filled in.</summary>
    public sealed record ModelSpec
    {
        /// <summary>Number of token ids.</summary>
        public int VocabularySize { get; init; }

        /// <summary>Width d of the residual stream.</summary>
        public int HiddenSize { get; init; }

        /// <summary>Number of decoder blocks, not counting MTP modules.</summary>
        public int Layers { get; init; }

        /// <summary>Leading layers with a dense SwiGLU FFN (every layer when <see cref="Moe"/> is null).</summary>
        public int DenseLayers { get; init; }

        /// <summary>Intermediate width of the dense SwiGLU FFN.</summary>
        public int DenseIntermediateSize { get; init; }

        /// <summary>Epsilon of every RMSNorm.</summary>
        public double RmsNormEpsilon { get; init; } = SpecDefaults.RmsNormEpsilon;

        /// <summary>RoPE base θ.</summary>
        public double RopeTheta { get; init; } = SpecDefaults.RopeTheta;

        /// <summary>Whether the embedding and output head share one matrix.</summary>
        public bool TieEmbeddings { get; init; }

        /// <summary>Training sequence length used for FLOPs and activation memory.</summary>
        public int SequenceLength { get; init; } = SpecDefaults.SequenceLength;

        /// <summary>YaRN scaling, or null for plain RoPE.</summary>
        public YarnSpec? Yarn { get; init; }

        /// <summary>The attention of every layer.</summary>
        public AttentionSpec Attention { get; init; } = new(0, 0, SpecDefaults.QueryLoraRank, SpecDefaults.QkNopeHeadDim, SpecDefaults.QkRopeHeadDim, SpecDefaults.ValueHeadDim);

        /// <summary>The Mixture-of-Experts layers, or null for an all-dense model.</summary>
        public MoeSpec? Moe { get; init; }

        /// <summary>Multi-Token Prediction, or null.</summary>
        public MtpSpec? Mtp { get; init; }

        /// <summary>The precision policy.</summary>
        public PrecisionSpec Precision { get; init; } = PrecisionSpec.Fp32;

        /// <summary>Pipeline parallelism, or null for a single stage.</summary>
        public PipelineSpec? Pipeline { get; init; }

        /// <summary>Expert parallelism, or null when one process holds every expert.</summary>
        public ExpertParallelSpec? ExpertParallel { get; init; }

        /// <summary>GRPO settings, or null.</summary>
        public GrpoSpec? Grpo { get; init; }

        /// <summary>Whether layer <paramref name="layer"/> has a Mixture-of-Experts FFN.</summary>
        public bool IsMoeLayer(int layer) => Moe is not null && layer >= DenseLayers;

        /// <summary>Number of layers with a Mixture-of-Experts FFN.</summary>
        public int MoeLayers => Moe is null ? 0 : System.Math.Max(0, Layers - System.Math.Max(0, DenseLayers));

        /// <summary>Number of layers with a dense FFN.</summary>
        public int DenseLayerCount => Layers - MoeLayers;
    }

    /// <summary>YaRN rotary scaling.</summary>
    /// <param name="Factor">Context extension factor s.</param>
    /// <param name="OriginalContextLength">Pre-training context length.</param>
    /// <param name="BetaFast">β_fast.</param>
    /// <param name="BetaSlow">β_slow.</param>
    /// <param name="MScale">Coefficient m of mscale = 0.1·m·ln(s) + 1.</param>
    /// <param name="MScaleAllDim">Hugging Face's mscale_all_dim.</param>
    public sealed record YarnSpec(double Factor, int OriginalContextLength, double BetaFast, double BetaSlow, double MScale, double MScaleAllDim);

    /// <summary>Multi-Head Latent Attention.</summary>
    /// <param name="Heads">Query heads n_h.</param>
    /// <param name="KeyValueLoraRank">KV latent width d_c.</param>
    /// <param name="QueryLoraRank">Query latent width d_c' (0: none).</param>
    /// <param name="QkNopeHeadDim">Per-head non-rotary width.</param>
    /// <param name="QkRopeHeadDim">Per-head rotary width.</param>
    /// <param name="ValueHeadDim">Per-head value width.</param>
    public sealed record AttentionSpec(int Heads, int KeyValueLoraRank, int QueryLoraRank, int QkNopeHeadDim, int QkRopeHeadDim, int ValueHeadDim)
    {
        /// <summary>Per-head query/key width: non-rotary plus rotary.</summary>
        public int QkHeadDim => QkNopeHeadDim + QkRopeHeadDim;

        /// <summary>
        /// What the latent cache holds per token and layer: the compressed key-value latent c_KV (d_c) and the shared rotary key
        /// k_pe (d_rope); also the K of absorbed attention's scores.
        /// </summary>
        public int CacheWidth => KeyValueLoraRank + QkRopeHeadDim;
    }

    /// <summary>DeepSeekMoE.</summary>
    /// <param name="RoutedExperts">N_r.</param>
    /// <param name="ActivatedExperts">K_r.</param>
    /// <param name="ExpertIntermediateSize">One expert's SwiGLU width.</param>
    /// <param name="SharedExperts">N_s.</param>
    /// <param name="Scoring">Affinity function.</param>
    /// <param name="ExpertGroups">Expert groups.</param>
    /// <param name="GroupsPerToken">Groups a token may route to.</param>
    /// <param name="RoutedScalingFactor">Gate-weight multiplier.</param>
    /// <param name="NormalizeTopK">Renormalise the selected weights.</param>
    /// <param name="Balancing">Balancing strategy.</param>
    /// <param name="BiasUpdateSpeed">γ.</param>
    /// <param name="SequenceBalanceLossWeight">α of V3's sequence-wise loss.</param>
    /// <param name="ExpertBalanceLossWeight">α1 of V2's expert-level loss.</param>
    /// <param name="DeviceBalanceLossWeight">α2 of V2's device-level loss.</param>
    /// <param name="CommunicationBalanceLossWeight">α3 of V2's communication loss.</param>
    public sealed record MoeSpec(
        int RoutedExperts,
        int ActivatedExperts,
        int ExpertIntermediateSize,
        int SharedExperts,
        ExpertScoring Scoring,
        int ExpertGroups,
        int GroupsPerToken,
        double RoutedScalingFactor,
        bool NormalizeTopK,
        LoadBalancing Balancing,
        double BiasUpdateSpeed,
        double SequenceBalanceLossWeight,
        double ExpertBalanceLossWeight,
        double DeviceBalanceLossWeight,
        double CommunicationBalanceLossWeight)
    {
        /// <summary>Whether the router carries a selection-only bias (auxiliary-loss-free balancing).</summary>
        public bool HasSelectionBias => Balancing == LoadBalancing.AuxiliaryLossFree;
    }

    /// <summary>Multi-Token Prediction.</summary>
    /// <param name="Depth">Number of sequential modules D.</param>
    /// <param name="LossWeight">λ.</param>
    public sealed record MtpSpec(int Depth, double LossWeight);

    /// <summary>Precision policy.</summary>
    /// <param name="Compute">GEMM input format.</param>
    /// <param name="ActivationTile">FP8 activation tile width.</param>
    /// <param name="WeightBlock">FP8 weight block edge.</param>
    /// <param name="PromotionInterval">K elements between FP32 promotions.</param>
    /// <param name="MasterWeights">Master weight format.</param>
    /// <param name="OptimizerMoments">AdamW moment format.</param>
    public sealed record PrecisionSpec(NumericFormat Compute, int ActivationTile, int WeightBlock, int PromotionInterval, NumericFormat MasterWeights, NumericFormat OptimizerMoments)
    {
        /// <summary>Everything in FP32: the policy of a class without [PrecisionPolicy].</summary>
        public static PrecisionSpec Fp32 { get; } = new(NumericFormat.Fp32, SpecDefaults.Fp8BlockSize, SpecDefaults.Fp8BlockSize, SpecDefaults.PromotionInterval, NumericFormat.Fp32, NumericFormat.Fp32);
    }

    /// <summary>Pipeline parallelism.</summary>
    /// <param name="Stages">P.</param>
    /// <param name="Schedule">Schedule kind.</param>
    /// <param name="MicroBatches">M.</param>
    public sealed record PipelineSpec(int Stages, PipelineSchedule Schedule, int MicroBatches);

    /// <summary>Expert parallelism.</summary>
    /// <param name="Ranks">Ranks the routed experts are spread over.</param>
    /// <param name="RanksPerNode">Ranks per node.</param>
    public sealed record ExpertParallelSpec(int Ranks, int RanksPerNode)
    {
        /// <summary>Nodes the ranks make (one when there are fewer ranks than a node holds).</summary>
        public int Nodes => RanksPerNode <= 0 ? 0 : System.Math.Max(1, Ranks / RanksPerNode);
    }

    /// <summary>GRPO settings.</summary>
    /// <param name="GroupSize">G.</param>
    /// <param name="Epsilon">ε.</param>
    /// <param name="EpsilonHigh">ε_high (0: same as ε).</param>
    /// <param name="Beta">β.</param>
    /// <param name="LossAggregation">Aggregation variant.</param>
    /// <param name="RewardScaling">Advantage scaling.</param>
    /// <param name="UpdatesPerRollout">μ.</param>
    public sealed record GrpoSpec(int GroupSize, double Epsilon, double EpsilonHigh, double Beta, GrpoLossAggregation LossAggregation, RewardScaling RewardScaling, int UpdatesPerRollout)
    {
        /// <summary>The upper clip range in effect: <see cref="EpsilonHigh"/>, or ε when it is 0.</summary>
        public double EffectiveEpsilonHigh => EpsilonHigh == 0 ? Epsilon : EpsilonHigh;
    }
}
