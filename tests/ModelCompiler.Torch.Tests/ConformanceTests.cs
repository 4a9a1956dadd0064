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
}
