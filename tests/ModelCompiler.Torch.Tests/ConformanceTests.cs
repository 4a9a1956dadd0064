using ModelCompiler.TestUtilities;
using ModelCompiler.Torch;
using ModelCompiler.Torch.Checkpoints;
using ModelCompiler.Torch.Layers;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Tests;

/// <summary>
/// The reference checkpoints (tests/fixtures/README.md): logits within 1e-4 of what DeepSeek's official code and transformers
/// compute, in both attention modes, and the greedy continuation through the cached decode path.
/// </summary>
public sealed class ConformanceTests
{
    private const double Tolerance = 1e-4;

    [Theory]
    [InlineData("tiny-v3", AttentionMode.Naive)]
    [InlineData("tiny-v3", AttentionMode.Absorbed)]
    public void Logits_match_the_reference(string fixture, AttentionMode mode)
    {
        using var scope = NewDisposeScope();
        string directory = RepositoryPaths.Combine("tests", "fixtures", fixture);
        using var checkpoint = Checkpoint.Open(directory);
        using var model = new DeepSeekCausalLM(checkpoint.Spec);
        checkpoint.LoadInto(model);
        using var expected = SafetensorsFile.Open(Path.Combine(directory, "expected.safetensors"));

        using var _ = no_grad();
        var logits = model.Forward(expected.ReadRaw("input_ids"), 0, mode, null);
        double difference = (logits - expected.ReadFloat("logits")).abs().max().item<float>();
        Assert.True(difference < Tolerance, $"max |Δlogit| = {difference:E3} in {mode} mode");
    }

    /// <summary>
    /// The FP8 checkpoint as stored (every F8_E4M3 weight dequantised with its 128×128 scales) against Hugging Face
    /// transformers 5.17 on the same dequantised weights, float32 activations: tests/fixtures/tools/fp8_reference.py wrote
    /// expected-dequantized.safetensors on the GPU machine (that script reproduces tiny-v3's expected logits exactly).
    /// </summary>
    [Theory]
    [InlineData(AttentionMode.Naive)]
    [InlineData(AttentionMode.Absorbed)]
    public void Fp8_checkpoint_logits_match_transformers_on_its_dequantised_weights(AttentionMode mode)
    {
        using var scope = NewDisposeScope();
        string directory = RepositoryPaths.Combine("tests", "fixtures", "tiny-v3-fp8");
        using var checkpoint = Checkpoint.Open(directory);
        using var model = new DeepSeekCausalLM(checkpoint.Spec);
        checkpoint.LoadInto(model);
        model.Precision.Format = NumericFormat.Fp32; // transformers ran float32 activations on the dequantised weights
        using var expected = SafetensorsFile.Open(Path.Combine(directory, "expected-dequantized.safetensors"));
        using var _ = no_grad();
        var logits = model.Forward(expected.ReadRaw("input_ids"), 0, mode, null);
        double difference = (logits - expected.ReadFloat("logits")).abs().max().item<float>();
        Assert.True(difference < Tolerance, $"max |Δlogit| = {difference:E3} in {mode} mode");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Greedy_tokens_match_the_reference_with_and_without_the_cache(bool useCache)
    {
        using var scope = NewDisposeScope();
        string directory = RepositoryPaths.Combine("tests", "fixtures", "tiny-v3");
        using var checkpoint = Checkpoint.Open(directory);
        using var model = new DeepSeekCausalLM(checkpoint.Spec);
        checkpoint.LoadInto(model);
        using var expected = SafetensorsFile.Open(Path.Combine(directory, "expected.safetensors"));
        long[] prompt = expected.ReadRaw("greedy_prompt").data<long>().ToArray();
        long[] tokens = expected.ReadRaw("greedy_tokens").data<long>().ToArray();

        var result = Generation.Generate(model, [prompt], tokens.Length, useCache: useCache);
        Assert.Equal(tokens, result.Tokens[0]);
        if (useCache) Assert.Equal(model.Plan.LatentCacheElementsPerLayer * checkpoint.Spec.Layers * sizeof(float), result.CacheBytesPerToken);
    }

    [Fact]
    public void Fp8_weights_dequantise_to_within_half_an_e4m3_step_of_the_float_weights()
    {
        using var scope = NewDisposeScope();
        using var fp8 = Checkpoint.Open(RepositoryPaths.Combine("tests", "fixtures", "tiny-v3-fp8"));
        using var float32 = Checkpoint.Open(RepositoryPaths.Combine("tests", "fixtures", "tiny-v3"));
        var quantised = fp8.Names.Where(n => n.EndsWith("_scale_inv", StringComparison.Ordinal)).Select(n => n[..^"_scale_inv".Length]).ToList();
        Assert.Equal(117, quantised.Count);
        foreach (string name in quantised)
        {
            var exact = float32.ReadFloat(name);
            var dequantised = fp8.ReadFloat(name);
            // E4M3 keeps 3 mantissa bits: rounding moves a normal value by at most 1/16 of itself, and a subnormal one (below
            // 2^-6 of the block scale's 448) by half the subnormal step, 2^-10 × scale; scale ≤ max|w| / 448.
            double subnormalHalfStep = exact.abs().max().item<float>() / 448 * Math.Pow(2, -10);
            var excess = (dequantised - exact).abs() - (exact.abs() / KeptScalars.OfInteger(16)) - KeptScalars.Of(subnormalHalfStep);
            Assert.True(excess.max().item<float>() <= 0, $"{name} is not the E4M3 rounding of the float weight");
        }

        // Every tensor of the model loads from the FP8 checkpoint.
        using var model = new DeepSeekCausalLM(fp8.Spec);
        fp8.LoadInto(model);
    }

    /// <summary>
    /// tests/fixtures/tiny-v3-fp8's expected logits were not computed from its own FP8 weights: its routed experts stayed in
    /// float (the generator quantised the model in memory, and transformers 5 keeps the routed experts as fused 3-D
    /// parameters rather than Linear modules, which an in-memory FP8 conversion passes over) while the file stores them in
    /// FP8. Found by dequantising the four weight groups on and off (16 combinations): attention, dense MLP and shared
    /// experts dequantised with the routed experts in float reproduce the expected logits to 1e-5; all dequantised, as the
    /// file says, they differ by up to 1.66. This test pins both facts: the first checks our FP8 dequantisation of every
    /// other group against the reference, the second fails when the fixture is regenerated consistently, at which point
    /// the plain conformance test above takes it over.
    /// </summary>
    [Fact]
    public void Fp8_checkpoint_matches_the_reference_once_its_routed_experts_are_the_float_ones_the_reference_used()
    {
        using var scope = NewDisposeScope();
        string directory = RepositoryPaths.Combine("tests", "fixtures", "tiny-v3-fp8");
        using var fp8 = Checkpoint.Open(directory);
        using var float32 = Checkpoint.Open(RepositoryPaths.Combine("tests", "fixtures", "tiny-v3"));
        using var expected = SafetensorsFile.Open(Path.Combine(directory, "expected.safetensors"));
        using var model = new DeepSeekCausalLM(fp8.Spec);
        fp8.LoadInto(model);
        model.Precision.Format = NumericFormat.Fp32; // the reference ran float32 activations on the dequantised weights
        using var _ = no_grad();
        var ids = expected.ReadRaw("input_ids");
        var reference = expected.ReadFloat("logits");
        double asStored = (model.Forward(ids, 0, AttentionMode.Naive, null) - reference).abs().max().item<float>();

        var parameters = model.state_dict();
        var routed = parameters.Keys.Where(n => n.Contains(".mlp.experts.", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(routed);
        foreach (string name in routed) parameters[name].copy_(float32.ReadFloat(name));
        double withFloatExperts = (model.Forward(ids, 0, AttentionMode.Naive, null) - reference).abs().max().item<float>();

        Assert.True(withFloatExperts < Tolerance, $"max |Δlogit| = {withFloatExperts:E3} with the routed experts in float");
        Assert.True(asStored > 0.5, $"max |Δlogit| = {asStored:E3} with every FP8 weight dequantised: the fixture now matches its own weights; use the plain conformance test for it");
    }
}
