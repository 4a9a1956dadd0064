using ModelCompiler;

namespace Samples.DeepSeekV3;

/// <summary>
/// DeepSeek-V3 (671B), declared from its published configuration (config.json of deepseek-ai/DeepSeek-V3): 61 layers of
/// Multi-Head Latent Attention, the first 3 with a dense FFN and the other 58 with 256 routed experts in 8 groups, one
/// Multi-Token Prediction module, FP8 training with 1×128 / 128×128 scaling, DualPipe over 16 stages, and the routed experts
/// spread over 64 ranks in 8 nodes (4 per rank), a token's experts on at most 4 nodes.
/// Press F12 on the class name to read the generated architecture and plan.
/// </summary>
[DeepSeekModel(vocabularySize: 129_280, hiddenSize: 7168, layers: 61, DenseLayers = 3, DenseIntermediateSize = 18_432)]
[YarnRopeScaling(factor: 40, originalContextLength: 4096, BetaFast = 32, BetaSlow = 1, MScale = 1.0, MScaleAllDim = 1.0)]
[MultiHeadLatentAttention(heads: 128, keyValueLoraRank: 512, QueryLoraRank = 1536, QkNopeHeadDim = 128, QkRopeHeadDim = 64, ValueHeadDim = 128)]
[MixtureOfExperts(routedExperts: 256, activatedExperts: 8, expertIntermediateSize: 2048,
    SharedExperts = 1, Scoring = ExpertScoring.Sigmoid, ExpertGroups = 8, GroupsPerToken = 4, RoutedScalingFactor = 2.5,
    NormalizeTopK = true, Balancing = LoadBalancing.AuxiliaryLossFree, BiasUpdateSpeed = 0.001, SequenceBalanceLossWeight = 0.0001)]
[MultiTokenPrediction(depth: 1, LossWeight = 0.3)]
[PrecisionPolicy(NumericFormat.Fp8E4M3, ActivationTile = 128, WeightBlock = 128, PromotionInterval = 128,
    MasterWeights = NumericFormat.Fp32, OptimizerMoments = NumericFormat.Bf16)]
[PipelineParallel(stages: 16, schedule: PipelineSchedule.DualPipe, microBatches: 32)]
[ExpertParallel(ranks: 64, RanksPerNode = 8)]
[Grpo(groupSize: 16, Epsilon = 10, Beta = 0.001, LossAggregation = GrpoLossAggregation.Grpo)]
public partial class DeepSeekV3;
