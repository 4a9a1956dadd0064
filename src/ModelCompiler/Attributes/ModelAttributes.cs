using System;
using ModelCompiler.Planning;

namespace ModelCompiler
{
    /// <summary>
    /// Marks a <see langword="partial"/> class as a DeepSeek-style decoder-only language model. The ModelCompiler
    /// generator validates the declaration, plans it and emits code specialised to it into the same class.
    /// </summary>
    /// <remarks>
    /// Every block is pre-norm: <c>x += MLA(RMSNorm(x))</c>, then <c>x += FFN(RMSNorm(x))</c>, where the FFN of the first
    /// <see cref="DenseLayers"/> layers is a dense SwiGLU and of the others a DeepSeekMoE layer (when
    /// <see cref="MixtureOfExpertsAttribute"/> is present). Combine with <see cref="MultiHeadLatentAttentionAttribute"/>
    /// (required) and optionally <see cref="MixtureOfExpertsAttribute"/>, <see cref="YarnRopeScalingAttribute"/>,
    /// <see cref="MultiTokenPredictionAttribute"/>, <see cref="PrecisionPolicyAttribute"/>,
    /// <see cref="PipelineParallelAttribute"/> and <see cref="GrpoAttribute"/>.
    /// </remarks>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
    public sealed class DeepSeekModelAttribute : Attribute
    {
        /// <summary>Declares a model.</summary>
        /// <param name="vocabularySize">Number of token ids (DeepSeek-V3: 129,280).</param>
        /// <param name="hiddenSize">Width d of the residual stream (DeepSeek-V3: 7168).</param>
        /// <param name="layers">Number of decoder blocks, not counting MTP modules (DeepSeek-V3: 61).</param>
        public DeepSeekModelAttribute(int vocabularySize, int hiddenSize, int layers)
        {
            VocabularySize = vocabularySize;
            HiddenSize = hiddenSize;
            Layers = layers;
        }

        /// <summary>Number of token ids (DeepSeek-V3: 129,280).</summary>
        public int VocabularySize { get; }

        /// <summary>Width d of the residual stream (DeepSeek-V3: 7168).</summary>
        public int HiddenSize { get; }

        /// <summary>Number of decoder blocks, not counting MTP modules (DeepSeek-V3: 61).</summary>
        public int Layers { get; }

        /// <summary>
        /// Number of leading layers whose FFN is a dense SwiGLU instead of a Mixture-of-Experts layer
        /// (HF <c>first_k_dense_replace</c>; DeepSeek-V3: 3). Without <see cref="MixtureOfExpertsAttribute"/> every layer is dense.
        /// </summary>
        public int DenseLayers { get; set; }

        /// <summary>Intermediate width of the dense SwiGLU FFN (HF <c>intermediate_size</c>; DeepSeek-V3: 18,432).</summary>
        public int DenseIntermediateSize { get; set; }

        /// <summary>Epsilon of every RMSNorm (default 1e-6).</summary>
        public double RmsNormEpsilon { get; set; } = SpecDefaults.RmsNormEpsilon;

        /// <summary>RoPE base θ (default 10000).</summary>
        public double RopeTheta { get; set; } = SpecDefaults.RopeTheta;

        /// <summary>Share one matrix between the token embedding and the output head (DeepSeek: <see langword="false"/>).</summary>
        public bool TieEmbeddings { get; set; }

        /// <summary>Training sequence length; sets the attention FLOPs and activation memory in the plan (default 4096).</summary>
        public int SequenceLength { get; set; } = SpecDefaults.SequenceLength;
    }

    /// <summary>
    /// YaRN rotary-position scaling for long contexts: frequencies between the β_fast and β_slow correction dimensions
    /// are blended towards θ^(−2i/d)/factor, and the softmax scale is multiplied by mscale² with
    /// mscale = 0.1·m·ln(factor) + 1 (DeepSeek-V3: factor 40, original context 4096).
    /// </summary>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
    public sealed class YarnRopeScalingAttribute : Attribute
    {
        /// <summary>Declares YaRN scaling.</summary>
        /// <param name="factor">Context extension factor s (DeepSeek-V3: 40).</param>
        /// <param name="originalContextLength">Context length the model was pre-trained with (DeepSeek-V3: 4096).</param>
        public YarnRopeScalingAttribute(double factor, int originalContextLength)
        {
            Factor = factor;
            OriginalContextLength = originalContextLength;
        }

        /// <summary>Context extension factor s (DeepSeek-V3: 40).</summary>
        public double Factor { get; }

        /// <summary>Context length the model was pre-trained with (DeepSeek-V3: 4096).</summary>
        public int OriginalContextLength { get; }

        /// <summary>Rotations per original context above which a frequency is kept unchanged (β_fast, default 32).</summary>
        public double BetaFast { get; set; } = SpecDefaults.BetaFast;

        /// <summary>Rotations per original context below which a frequency is fully interpolated (β_slow, default 1).</summary>
        public double BetaSlow { get; set; } = SpecDefaults.BetaSlow;

        /// <summary>Coefficient m of mscale = 0.1·m·ln(s) + 1, which scales the softmax by mscale² (default 1.0; V2-Lite 0.707).</summary>
        public double MScale { get; set; } = SpecDefaults.MScale;

        /// <summary>Hugging Face's <c>mscale_all_dim</c>, kept for round trips with config.json (default 1.0).</summary>
        public double MScaleAllDim { get; set; } = SpecDefaults.MScale;
    }

    /// <summary>
    /// Multi-Head Latent Attention: keys and values are compressed into one shared latent of
    /// <see cref="KeyValueLoraRank"/> values per token plus one shared rotary key of <see cref="QkRopeHeadDim"/> values,
    /// which is all the KV cache holds.
    /// </summary>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
    public sealed class MultiHeadLatentAttentionAttribute : Attribute
    {
        /// <summary>Declares the attention.</summary>
        /// <param name="heads">Number of query heads n_h (DeepSeek-V3: 128).</param>
        /// <param name="keyValueLoraRank">Width d_c of the compressed KV latent (DeepSeek-V3: 512).</param>
        public MultiHeadLatentAttentionAttribute(int heads, int keyValueLoraRank)
        {
            Heads = heads;
            KeyValueLoraRank = keyValueLoraRank;
        }

        /// <summary>Number of query heads n_h (DeepSeek-V3: 128).</summary>
        public int Heads { get; }

        /// <summary>Width d_c of the compressed KV latent (DeepSeek-V3: 512).</summary>
        public int KeyValueLoraRank { get; }

        /// <summary>Width d_c' of the compressed query latent; 0 projects queries directly (default 0; DeepSeek-V3: 1536).</summary>
        public int QueryLoraRank { get; set; } = SpecDefaults.QueryLoraRank;

        /// <summary>Per-head non-rotary query/key width d_h (default 128).</summary>
        public int QkNopeHeadDim { get; set; } = SpecDefaults.QkNopeHeadDim;

        /// <summary>Per-head rotary query width and width of the single shared rotary key d_h^R (default 64; must be even).</summary>
        public int QkRopeHeadDim { get; set; } = SpecDefaults.QkRopeHeadDim;

        /// <summary>Per-head value width (default 128).</summary>
        public int ValueHeadDim { get; set; } = SpecDefaults.ValueHeadDim;
    }

    /// <summary>
    /// DeepSeekMoE feed-forward layers (every layer from <see cref="DeepSeekModelAttribute.DenseLayers"/> on): shared experts
    /// that see every token plus fine-grained routed experts of which each token activates a few.
    /// </summary>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
    public sealed class MixtureOfExpertsAttribute : Attribute
    {
        /// <summary>Declares the Mixture-of-Experts layers.</summary>
        /// <param name="routedExperts">Number of routed experts N_r (DeepSeek-V3: 256).</param>
        /// <param name="activatedExperts">Routed experts each token is sent to, K_r (DeepSeek-V3: 8).</param>
        /// <param name="expertIntermediateSize">Intermediate width of one expert's SwiGLU (DeepSeek-V3: 2048).</param>
        public MixtureOfExpertsAttribute(int routedExperts, int activatedExperts, int expertIntermediateSize)
        {
            RoutedExperts = routedExperts;
            ActivatedExperts = activatedExperts;
            ExpertIntermediateSize = expertIntermediateSize;
        }

        /// <summary>Number of routed experts N_r (DeepSeek-V3: 256).</summary>
        public int RoutedExperts { get; }

        /// <summary>Routed experts each token is sent to, K_r (DeepSeek-V3: 8).</summary>
        public int ActivatedExperts { get; }

        /// <summary>Intermediate width of one expert's SwiGLU (DeepSeek-V3: 2048).</summary>
        public int ExpertIntermediateSize { get; }

        /// <summary>Shared experts N_s that process every token, run as one SwiGLU of width N_s × expert width (DeepSeek-V3: 1).</summary>
        public int SharedExperts { get; set; }

        /// <summary>How affinities are computed from the router logits (default <see cref="ExpertScoring.Sigmoid"/>).</summary>
        public ExpertScoring Scoring { get; set; } = ExpertScoring.Sigmoid;

        /// <summary>Number of equal, contiguous expert groups (nodes or devices) for group-limited routing (default 1: no limit; DeepSeek-V3: 8).</summary>
        public int ExpertGroups { get; set; } = 1;

        /// <summary>Groups a token may route to; experts outside them are masked with −∞ (default 1; DeepSeek-V3: 4).</summary>
        public int GroupsPerToken { get; set; } = 1;

        /// <summary>Multiplier of the routed experts' gate weights (default 1.0; DeepSeek-V3: 2.5, V2: 16).</summary>
        public double RoutedScalingFactor { get; set; } = SpecDefaults.RoutedScalingFactor;

        /// <summary>Renormalise the selected experts' weights to sum to 1 before scaling (default <see langword="true"/>; DeepSeek-V2: false).</summary>
        public bool NormalizeTopK { get; set; } = true;

        /// <summary>How experts are balanced during training (default <see cref="LoadBalancing.AuxiliaryLossFree"/>).</summary>
        public LoadBalancing Balancing { get; set; } = LoadBalancing.AuxiliaryLossFree;

        /// <summary>Bias update speed γ of auxiliary-loss-free balancing: b_i ± γ after each step (default 0.001).</summary>
        public double BiasUpdateSpeed { get; set; } = SpecDefaults.BiasUpdateSpeed;

        /// <summary>Weight α of DeepSeek-V3's complementary sequence-wise balance loss (default 0, off; V3 paper: 1e-4).</summary>
        public double SequenceBalanceLossWeight { get; set; }

        /// <summary>Weight α1 of DeepSeek-V2's expert-level balance loss (default 0, off; V2: 0.003, V2-Lite: 0.001).</summary>
        public double ExpertBalanceLossWeight { get; set; }

        /// <summary>Weight α2 of DeepSeek-V2's device-level balance loss, devices = expert groups (default 0, off; V2: 0.05).</summary>
        public double DeviceBalanceLossWeight { get; set; }

        /// <summary>Weight α3 of DeepSeek-V2's communication balance loss, at most <see cref="GroupsPerToken"/> devices per token (default 0, off; V2: 0.02).</summary>
        public double CommunicationBalanceLossWeight { get; set; }
    }

    /// <summary>
    /// Multi-Token Prediction: D sequential modules, each a projection of [RMSNorm(embedding); RMSNorm(hidden)] and one
    /// decoder block, sharing the embedding and output head, that predict the token k+1 positions ahead.
    /// </summary>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
    public sealed class MultiTokenPredictionAttribute : Attribute
    {
        /// <summary>Declares MTP modules.</summary>
        /// <param name="depth">Number of sequential MTP modules D (DeepSeek-V3: 1; 0 disables MTP).</param>
        public MultiTokenPredictionAttribute(int depth) => Depth = depth;

        /// <summary>Number of sequential MTP modules D (DeepSeek-V3: 1; 0 disables MTP).</summary>
        public int Depth { get; }

        /// <summary>Weight λ of the MTP loss, L = L_main + λ/D · Σ_k L_k (default 0.3).</summary>
        public double LossWeight { get; set; } = SpecDefaults.MtpLossWeight;
    }

    /// <summary>
    /// The precision of GEMMs, master weights and optimizer state. FP8-E4M3 quantises GEMM inputs with 1×tile activation
    /// tiles and block×block weight blocks and promotes partial sums to FP32 every <see cref="PromotionInterval"/> elements.
    /// Without this attribute everything is FP32.
    /// </summary>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
    public sealed class PrecisionPolicyAttribute : Attribute
    {
        /// <summary>Declares the precision policy.</summary>
        /// <param name="compute">Format of GEMM inputs (DeepSeek-V3: <see cref="NumericFormat.Fp8E4M3"/>).</param>
        public PrecisionPolicyAttribute(NumericFormat compute) => Compute = compute;

        /// <summary>Format of GEMM inputs (DeepSeek-V3: <see cref="NumericFormat.Fp8E4M3"/>).</summary>
        public NumericFormat Compute { get; }

        /// <summary>Channels per FP8 activation tile (1 × this; default 128).</summary>
        public int ActivationTile { get; set; } = SpecDefaults.Fp8BlockSize;

        /// <summary>Edge of an FP8 weight block (this × this; default 128).</summary>
        public int WeightBlock { get; set; } = SpecDefaults.Fp8BlockSize;

        /// <summary>K elements accumulated on tensor cores before promotion to FP32 registers (default 128).</summary>
        public int PromotionInterval { get; set; } = SpecDefaults.PromotionInterval;

        /// <summary>Format of the master weights the optimizer updates (default <see cref="NumericFormat.Fp32"/>).</summary>
        public NumericFormat MasterWeights { get; set; } = NumericFormat.Fp32;

        /// <summary>Format of AdamW's first and second moments (default <see cref="NumericFormat.Fp32"/>; DeepSeek-V3: BF16).</summary>
        public NumericFormat OptimizerMoments { get; set; } = NumericFormat.Fp32;
    }

    /// <summary>Pipeline parallelism: the layers are cut into stages that run on different ranks under a static schedule.</summary>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
    public sealed class PipelineParallelAttribute : Attribute
    {
        /// <summary>Declares the pipeline.</summary>
        /// <param name="stages">Number of pipeline stages P.</param>
        /// <param name="schedule">The schedule that orders forward and backward passes.</param>
        /// <param name="microBatches">Micro-batches per optimizer step M (DualPipe: even and at least 2P).</param>
        public PipelineParallelAttribute(int stages, PipelineSchedule schedule, int microBatches)
        {
            Stages = stages;
            Schedule = schedule;
            MicroBatches = microBatches;
        }

        /// <summary>Number of pipeline stages P.</summary>
        public int Stages { get; }

        /// <summary>The schedule that orders forward and backward passes.</summary>
        public PipelineSchedule Schedule { get; }

        /// <summary>Micro-batches per optimizer step M (DualPipe: even and at least 2P).</summary>
        public int MicroBatches { get; }
    }

    /// <summary>
    /// Expert parallelism: the routed experts of every MoE layer are spread over <see cref="Ranks"/> ranks (each holds
    /// RoutedExperts / Ranks of them), grouped into nodes of <see cref="RanksPerNode"/>; a token's hidden state travels once to
    /// each rank that holds one of its experts (dispatch) and one weighted sum per rank comes back (combine). With the expert
    /// groups laid on the nodes, node-limited routing (<see cref="MixtureOfExpertsAttribute.GroupsPerToken"/>) bounds how many
    /// nodes a token reaches (DeepSeek-V3: 64 ranks in 8 nodes, 8 groups, 4 per token).
    /// </summary>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
    public sealed class ExpertParallelAttribute : Attribute
    {
        /// <summary>Declares expert parallelism.</summary>
        /// <param name="ranks">Ranks the routed experts are spread over (they must divide the routed experts; DeepSeek-V3: 64).</param>
        public ExpertParallelAttribute(int ranks) => Ranks = ranks;

        /// <summary>Ranks the routed experts are spread over (DeepSeek-V3: 64).</summary>
        public int Ranks { get; }

        /// <summary>Ranks (GPUs) per node (default 8, an H800 or H200 node); fewer ranks than this make one node.</summary>
        public int RanksPerNode { get; set; } = SpecDefaults.RanksPerNode;
    }

    /// <summary>
    /// Group Relative Policy Optimization: G completions per prompt, advantages relative to the group, a clipped surrogate
    /// and an optional k3 KL penalty to a frozen reference policy.
    /// </summary>
    [AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
    public sealed class GrpoAttribute : Attribute
    {
        /// <summary>Declares GRPO settings.</summary>
        /// <param name="groupSize">Completions sampled per prompt G (at least 2).</param>
        public GrpoAttribute(int groupSize) => GroupSize = groupSize;

        /// <summary>Completions sampled per prompt G (at least 2).</summary>
        public int GroupSize { get; }

        /// <summary>Lower clip range ε: ratios below 1 − ε are clipped (default 0.2).</summary>
        public double Epsilon { get; set; } = SpecDefaults.GrpoEpsilon;

        /// <summary>Upper clip range ε_high: ratios above 1 + ε_high are clipped (default 0: the same as <see cref="Epsilon"/>; DAPO: 0.28).</summary>
        public double EpsilonHigh { get; set; }

        /// <summary>Weight β of the k3 KL penalty to the reference policy; 0 loads no reference model (default 0).</summary>
        public double Beta { get; set; } = SpecDefaults.GrpoBeta;

        /// <summary>How per-token losses are averaged (default <see cref="GrpoLossAggregation.Dapo"/>).</summary>
        public GrpoLossAggregation LossAggregation { get; set; } = GrpoLossAggregation.Dapo;

        /// <summary>How advantages are scaled (default <see cref="RewardScaling.Group"/>).</summary>
        public RewardScaling RewardScaling { get; set; } = RewardScaling.Group;

        /// <summary>Optimizer passes over each rollout batch μ, against stored old-policy log-probs (default 1).</summary>
        public int UpdatesPerRollout { get; set; } = SpecDefaults.GrpoUpdatesPerRollout;
    }
}
