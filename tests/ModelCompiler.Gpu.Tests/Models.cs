using ModelCompiler;

namespace ModelCompiler.Gpu.Tests;

/// <summary>DeepSeek-V2's routing (softmax scores, no selection bias, 8 groups scored by their maximum, top 3 groups, no renormalisation) and MLA with 16 heads as V2-Lite: the other branches of the kernels.</summary>
[DeepSeekModel(vocabularySize: 1024, hiddenSize: 2048, layers: 2, DenseLayers = 1, DenseIntermediateSize = 1024)]
[MultiHeadLatentAttention(heads: 16, keyValueLoraRank: 512, QueryLoraRank = 0, QkNopeHeadDim = 128, QkRopeHeadDim = 64, ValueHeadDim = 128)]
[MixtureOfExperts(routedExperts: 160, activatedExperts: 6, expertIntermediateSize: 1536,
    SharedExperts = 2, Scoring = ExpertScoring.Softmax, ExpertGroups = 8, GroupsPerToken = 3, RoutedScalingFactor = 16.0,
    NormalizeTopK = false, Balancing = LoadBalancing.AuxiliaryLoss, ExpertBalanceLossWeight = 0.003)]
public partial class V2Style;

/// <summary>RoPE over 6 values after 6 others: q_pe and k_pe rows that do not start on 16 bytes, so the kernel rotates one pair per thread.</summary>
[DeepSeekModel(vocabularySize: 64, hiddenSize: 64, layers: 1, DenseIntermediateSize = 128)]
[MultiHeadLatentAttention(heads: 2, keyValueLoraRank: 64, QueryLoraRank = 0, QkNopeHeadDim = 6, QkRopeHeadDim = 6, ValueHeadDim = 8)]
public partial class PairRope;
