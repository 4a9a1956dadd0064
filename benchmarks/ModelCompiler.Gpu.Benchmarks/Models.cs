using ModelCompiler;

namespace ModelCompiler.Gpu.Benchmarks;

/// <summary>DeepSeek-V2-Lite (16 heads, no query compression, 64 experts, greedy softmax routing): the memory-bound MLA case.</summary>
[DeepSeekModel(vocabularySize: 102_400, hiddenSize: 2048, layers: 27, DenseLayers = 1, DenseIntermediateSize = 10_944)]
[MultiHeadLatentAttention(heads: 16, keyValueLoraRank: 512, QueryLoraRank = 0, QkNopeHeadDim = 128, QkRopeHeadDim = 64, ValueHeadDim = 128)]
[MixtureOfExperts(routedExperts: 64, activatedExperts: 6, expertIntermediateSize: 1408,
    SharedExperts = 2, Scoring = ExpertScoring.Softmax, ExpertGroups = 1, GroupsPerToken = 1, RoutedScalingFactor = 1.0,
    NormalizeTopK = false, Balancing = LoadBalancing.AuxiliaryLoss, ExpertBalanceLossWeight = 0.001)]
public partial class DeepSeekV2Lite;
