using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using ModelCompiler.Torch.Checkpoints;
using ModelCompiler.Torch.Layers;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Tests;

/// <summary>
/// Every configuration family of deepseek-reference §8, on random checkpoints written by our writer: V3-style sigmoid routing
/// with the selection bias and top-2-sum groups; V2-style softmax, no bias, no renormalisation, group-limited by the best
/// score; V2-Lite-style no query compression, greedy routing, two shared experts, YaRN with mscale 0.707 and several dense
/// layers; a dense-only model. For each: save → load round trip, naive = absorbed, cached decode = uncached decode, and the
/// latent cache's size per token equals the plan's.
/// </summary>
public sealed class ModelFamilyTests
{
    public static TheoryData<string> Families() => new(FamilySpecs.Keys);

    private static readonly Dictionary<string, ModelSpec> FamilySpecs = new()
    {
        ["v3-noaux-tc"] = Spec(qLora: 48, moe: new MoeSpec(16, 4, 32, 1, ExpertScoring.Sigmoid, 4, 2, 2.5, true, LoadBalancing.AuxiliaryLossFree, 0.001, 0, 0, 0, 0), dense: 1, mtp: true),
        ["v2-group-limited"] = Spec(qLora: 48, moe: new MoeSpec(16, 3, 32, 2, ExpertScoring.Softmax, 4, 2, 16, false, LoadBalancing.AuxiliaryLoss, 0, 0, 0.003, 0, 0), dense: 1),
        ["v2-lite-greedy-yarn"] = Spec(qLora: 0, moe: new MoeSpec(12, 3, 24, 2, ExpertScoring.Softmax, 1, 1, 1, false, LoadBalancing.AuxiliaryLoss, 0, 0, 0.001, 0, 0), dense: 2,
            yarn: new YarnSpec(40, 16, 32, 1, 0.707, 0.707)),
        ["v3-yarn-three-dense"] = Spec(qLora: 32, moe: new MoeSpec(8, 2, 32, 1, ExpertScoring.Sigmoid, 2, 1, 2.5, true, LoadBalancing.AuxiliaryLossFree, 0.001, 0, 0, 0, 0), dense: 3,
            yarn: new YarnSpec(40, 16, 32, 1, 1, 1), layers: 4),
        ["dense-only"] = Spec(qLora: 0, moe: null, dense: 3),
    };

    [Theory]
    [MemberData(nameof(Families))]
    public void Family_round_trips_and_its_paths_agree(string family)
    {
        using var scope = NewDisposeScope();
        var spec = HuggingFaceConfig.Parse(HuggingFaceConfig.ToJson(FamilySpecs[family]));
        using var model = new DeepSeekCausalLM(spec, seed: 1234);
        RandomCheckpoint.Initialise(model, seed: family.GetHashCode(StringComparison.Ordinal));
        var ids = randint(0, spec.VocabularySize, [2, 11]);

        string directory = Path.Combine(Path.GetTempPath(), $"mc-family-{family}-{Guid.NewGuid():N}");
        try
        {
            Checkpoint.Save(model, directory, HuggingFaceConfig.ToJson(spec));
            using var checkpoint = Checkpoint.Open(directory);
            Assert.Equal(spec, checkpoint.Spec);
            using var loaded = new DeepSeekCausalLM(checkpoint.Spec);
            checkpoint.LoadInto(loaded);

            using var _ = no_grad();
            var naive = model.Forward(ids, 0, AttentionMode.Naive, null);
            Assert.Equal(0, (loaded.Forward(ids, 0, AttentionMode.Naive, null) - naive).abs().max().item<float>());
            double scale = naive.abs().max().item<float>();
            double absorbedGap = (loaded.Forward(ids, 0, AttentionMode.Absorbed, null) - naive).abs().max().item<float>();
            Assert.True(absorbedGap <= 1e-5 * Math.Max(1, scale), $"absorbed differs from naive by {absorbedGap:E2} (logits up to {scale:F1})");

            long[][] prompts = [[1, 2, 3, 4, 5], [6, 7, 8]];
            var cached = Generation.Generate(loaded, prompts, 6);
            var uncached = Generation.Generate(loaded, prompts, 6, useCache: false);
            Assert.Equal(uncached.Tokens, cached.Tokens);
            Assert.Equal(loaded.Plan.LatentCacheElementsPerLayer * spec.Layers * sizeof(float), cached.CacheBytesPerToken);
        }
        finally
        {
            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Bf16_cache_halves_the_bytes_and_matches_the_plan()
    {
        using var scope = NewDisposeScope();
        var spec = FamilySpecs["v3-noaux-tc"];
        using var model = new DeepSeekCausalLM(spec);
        using var cache = model.CreateCache(1, 8, ScalarType.BFloat16);
        Assert.Equal(model.Plan.KvCacheBytesPerToken, cache.BytesPerToken); // the plan counts the latent cache in BF16
    }

    private static ModelSpec Spec(int qLora, MoeSpec? moe, int dense, YarnSpec? yarn = null, bool mtp = false, int layers = 3) => new()
    {
        VocabularySize = 97,
        HiddenSize = 64,
        Layers = layers,
        DenseLayers = dense,
        DenseIntermediateSize = 96,
        SequenceLength = 64,
        Attention = new AttentionSpec(4, 32, qLora, 16, 8, 16),
        Moe = moe,
        Yarn = yarn,
        Mtp = mtp ? new MtpSpec(1, 0.3) : null,
    };
}
