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
    [InlineData("tiny-v3-fp8", AttentionMode.Naive)]
    [InlineData("tiny-v3-fp8", AttentionMode.Absorbed)]
    public void Logits_match_the_reference(string fixture, AttentionMode mode)
    {
        using var scope = NewDisposeScope();
        using var model = Loaded(fixture, out var expected);
        using var _ = expected;
        using var grad = no_grad();
        var logits = model.Forward(expected.ReadRaw("input_ids"), 0, mode, null);
        double difference = (logits - expected.ReadFloat("logits")).abs().max().item<float>();
        Assert.True(difference < Tolerance, $"max |Δlogit| = {difference:E3} in {mode} mode");
    }

    [Theory]
    [InlineData("tiny-v3", true)]
    [InlineData("tiny-v3", false)]
    [InlineData("tiny-v3-fp8", true)]
    [InlineData("tiny-v3-fp8", false)]
    public void Greedy_tokens_match_the_reference_with_and_without_the_cache(string fixture, bool useCache)
    {
        using var scope = NewDisposeScope();
        using var model = Loaded(fixture, out var expected);
        using var _ = expected;
        long[] prompt = expected.ReadRaw("greedy_prompt").data<long>().ToArray();
        long[] tokens = expected.ReadRaw("greedy_tokens").data<long>().ToArray();

        var result = Generation.Generate(model, [prompt], tokens.Length, useCache: useCache);
        Assert.Equal(tokens, result.Tokens[0]);
        if (useCache) Assert.Equal(model.Plan.LatentCacheElementsPerLayer * model.Spec.Layers * sizeof(float), result.CacheBytesPerToken);
    }

    /// <summary>
    /// A fixture's model with its checkpoint's weights, and its expected outputs. The references ran float32 activations
    /// (on the dequantised weights, for the FP8 checkpoint: tests/fixtures/tools/fp8_reference.py), so the model computes in
    /// FP32 whatever precision policy its config declares, as <c>verify</c> does.
    /// </summary>
    private static DeepSeekCausalLM Loaded(string fixture, out SafetensorsFile expected)
    {
        string directory = RepositoryPaths.Combine("tests", "fixtures", fixture);
        using var checkpoint = Checkpoint.Open(directory);
        var model = new DeepSeekCausalLM(checkpoint.Spec);
        checkpoint.LoadInto(model);
        model.Precision.Format = NumericFormat.Fp32;
        expected = SafetensorsFile.Open(Path.Combine(directory, "expected.safetensors"));
        return model;
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
}
