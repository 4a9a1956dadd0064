using ModelCompiler;

namespace Samples.TinySeek;

/// <summary>
/// TinySeek: every DeepSeek-V3 idea at a size that trains on two CPU cores. A character vocabulary for the arithmetic and
/// sorting problems it learns, 4 layers of Multi-Head Latent Attention (with query compression), one dense layer then
/// DeepSeekMoE with 8 fine-grained experts in 2 groups plus a shared expert, sigmoid routing with the auxiliary-loss-free
/// bias, one MTP module, and GRPO settings for the reinforcement-learning stage.
/// </summary>
[DeepSeekModel(vocabularySize: 32, hiddenSize: 64, layers: 4, DenseLayers = 1, DenseIntermediateSize = 128, SequenceLength = 64)]
[MultiHeadLatentAttention(heads: 4, keyValueLoraRank: 64, QueryLoraRank = 48, QkNopeHeadDim = 16, QkRopeHeadDim = 8, ValueHeadDim = 16)]
[MixtureOfExperts(routedExperts: 8, activatedExperts: 2, expertIntermediateSize: 32,
    SharedExperts = 1, Scoring = ExpertScoring.Sigmoid, ExpertGroups = 2, GroupsPerToken = 1, RoutedScalingFactor = 1.0,
    Balancing = LoadBalancing.AuxiliaryLossFree, BiasUpdateSpeed = 0.001)]
[MultiTokenPrediction(depth: 1, LossWeight = 0.3)]
[Grpo(groupSize: 8, Epsilon = 0.2, Beta = 0.0, LossAggregation = GrpoLossAggregation.Dapo)]
public partial class TinySeek;
