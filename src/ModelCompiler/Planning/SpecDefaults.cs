namespace ModelCompiler.Planning
{
    /// <summary>
    /// The value each optional attribute argument takes when the user leaves it out. The attributes initialise their
    /// properties from these constants and the generator's parser falls back to them, so the two cannot drift.
    /// </summary>
    public static class SpecDefaults
    {
        /// <summary>Default RMSNorm epsilon (DeepSeek-V3: 1e-6).</summary>
        public const double RmsNormEpsilon = 1e-6;

        /// <summary>Default RoPE base θ (DeepSeek-V3: 10000).</summary>
        public const double RopeTheta = 10000.0;

        /// <summary>Default training sequence length used for FLOPs and activation memory (DeepSeek-V3: 4096).</summary>
        public const int SequenceLength = 4096;

        /// <summary>Default YaRN β_fast (DeepSeek-V3: 32).</summary>
        public const double BetaFast = 32.0;

        /// <summary>Default YaRN β_slow (DeepSeek-V3: 1).</summary>
        public const double BetaSlow = 1.0;

        /// <summary>Default YaRN mscale coefficient m (DeepSeek-V3: 1.0).</summary>
        public const double MScale = 1.0;

        /// <summary>Default query-compression rank: 0, no query compression.</summary>
        public const int QueryLoraRank = 0;

        /// <summary>Default per-head non-rotary query/key width (DeepSeek: 128).</summary>
        public const int QkNopeHeadDim = 128;

        /// <summary>Default per-head rotary width (DeepSeek: 64).</summary>
        public const int QkRopeHeadDim = 64;

        /// <summary>Default per-head value width (DeepSeek: 128).</summary>
        public const int ValueHeadDim = 128;

        /// <summary>Default scaling of the routed experts' combined output: 1.</summary>
        public const double RoutedScalingFactor = 1.0;

        /// <summary>Default bias update speed γ of auxiliary-loss-free balancing (DeepSeek-V3: 0.001).</summary>
        public const double BiasUpdateSpeed = 0.001;

        /// <summary>Default MTP loss weight λ (DeepSeek-V3's first 10T tokens: 0.3).</summary>
        public const double MtpLossWeight = 0.3;

        /// <summary>Default FP8 tile and block edge (DeepSeek-V3: 1×128 activation tiles, 128×128 weight blocks).</summary>
        public const int Fp8BlockSize = 128;

        /// <summary>[ExpertParallel] RanksPerNode: the GPUs of an H800 or H200 node.</summary>
        public const int RanksPerNode = 8;

        /// <summary>Default number of K elements accumulated on tensor cores before promotion to FP32 (DeepSeek-V3: 128).</summary>
        public const int PromotionInterval = 128;

        /// <summary>Default GRPO clip ε.</summary>
        public const double GrpoEpsilon = 0.2;

        /// <summary>Default GRPO KL weight β: 0, no reference model is loaded.</summary>
        public const double GrpoBeta = 0.0;

        /// <summary>Default GRPO updates per rollout μ.</summary>
        public const int GrpoUpdatesPerRollout = 1;

        /// <summary>AdamW's β1 in pre-training (DeepSeek-V3: 0.9).</summary>
        public const double AdamBeta1 = 0.9;

        /// <summary>AdamW's β2 in pre-training (DeepSeek-V3: 0.95).</summary>
        public const double AdamBeta2 = 0.95;

        /// <summary>AdamW's weight decay on matrices in pre-training (DeepSeek-V3: 0.1).</summary>
        public const double WeightDecay = 0.1;

        /// <summary>The fraction of the peak learning rate the cosine decays to at the last step.</summary>
        public const double FinalLearningRateRatio = 0.1;

        /// <summary>The gradient-norm clip in pre-training (DeepSeek-V3: 1.0).</summary>
        public const double GradientClip = 1.0;
    }
}
