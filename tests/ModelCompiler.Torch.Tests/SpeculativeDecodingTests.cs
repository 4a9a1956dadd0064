using ModelCompiler.Planning;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Tests;

/// <summary>Self-speculative decoding with the MTP module gives greedy decoding's tokens exactly.</summary>
public sealed class SpeculativeDecodingTests
{
    [Fact]
    public void Speculative_tokens_equal_greedy_tokens()
    {
        using var scope = NewDisposeScope();
        var spec = new ModelSpec
        {
            VocabularySize = 23, HiddenSize = 32, Layers = 2, DenseLayers = 1, DenseIntermediateSize = 64, SequenceLength = 64,
            Attention = new AttentionSpec(2, 32, 16, 8, 4, 8),
            Moe = new MoeSpec(8, 2, 16, 1, ExpertScoring.Sigmoid, 2, 1, 1.0, true, LoadBalancing.AuxiliaryLossFree, 0.001, 0, 0, 0, 0),
            Mtp = new MtpSpec(1, 0.3),
        };
        using var model = new DeepSeekCausalLM(spec, includeMtp: true);
        RandomCheckpoint.Initialise(model, seed: 17);
        int drafts = 0, accepted = 0;
        foreach (long[] prompt in new[] { new long[] { 1, 2, 3 }, [5], [7, 7, 7, 7, 9, 11], [22, 0, 13] })
        {
            var greedy = Generation.Generate(model, [prompt], 20).Tokens[0];
            var speculative = SpeculativeDecoding.Generate(model, prompt, 20);
            Assert.Equal(greedy, speculative.Tokens);
            drafts += speculative.Drafts;
            accepted += speculative.Accepted;
            // The prefill yields one token; each checking pass one more, or two when its draft is accepted.
            Assert.Equal(speculative.Tokens.Count, Math.Min(20, 1 + speculative.Forwards + speculative.Accepted));
        }

        Assert.True(drafts > 0 && accepted > 0 && accepted < drafts, $"both branches must run: {accepted} of {drafts} drafts accepted");
        var plain = Generation.Generate(model, [new long[] { 1, 2, 3 }], 20).Tokens[0];
        long stop = plain[4];
        var stopped = SpeculativeDecoding.Generate(model, [1, 2, 3], 20, stopTokens: [stop]);
        Assert.Equal(plain.Take(plain.ToList().IndexOf(stop) + 1), stopped.Tokens);
    }
}

/// <summary>Small forward steps run on one intra-op thread, and the thread count comes back.</summary>
public sealed class SmallStepTests
{
    [Fact]
    public void A_step_of_few_rows_runs_on_one_thread_and_restores_the_count()
    {
        int before = get_num_threads();
        set_num_threads(2);
        try
        {
            using (SmallStep.Enter(rows: 2, width: 64)) Assert.Equal(1, get_num_threads());
            Assert.Equal(2, get_num_threads());
            using (SmallStep.Enter(rows: 16, width: 512)) Assert.Equal(2, get_num_threads()); // 8192 values: two threads win
            Assert.Equal(2, get_num_threads());
        }
        finally
        {
            set_num_threads(before);
        }
    }
}
