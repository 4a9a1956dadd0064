using ModelCompiler.Planning;
using ModelCompiler.Torch.Training;

namespace ModelCompiler.Torch.Tests;

/// <summary>The small declarations the training tests share.</summary>
internal static class TestModels
{
    /// <summary>A 2-layer MLA + MoE model over TinySeek's vocabulary (one dense layer, 8 experts in 2 groups), with or without MTP.</summary>
    public static ModelSpec Tiny(bool mtp = true) => new()
    {
        VocabularySize = ArithmeticTasks.VocabularySize, HiddenSize = 32, Layers = 2, DenseLayers = 1, DenseIntermediateSize = 64, SequenceLength = 16,
        Attention = new AttentionSpec(2, 32, 16, 8, 4, 8),
        Moe = new MoeSpec(8, 2, 16, 1, ExpertScoring.Sigmoid, 2, 1, 1.0, true, LoadBalancing.AuxiliaryLossFree, 0.001, 0, 0, 0, 0),
        Mtp = mtp ? new MtpSpec(1, 0.3) : null,
    };
}
