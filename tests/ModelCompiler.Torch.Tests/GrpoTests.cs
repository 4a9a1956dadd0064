using ModelCompiler.Planning;
using ModelCompiler.Torch.Rl;
using ModelCompiler.Torch.Training;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Tests;

/// <summary>GRPO's pieces against hand-computed values, and the behaviours grpo-reference §5.3 lists.</summary>
public sealed class GrpoTests
{
    private static GrpoSpec Spec(GrpoLossAggregation aggregation, double beta = 0, int mu = 1) =>
        new(2, 0.2, 0.28, beta, aggregation, RewardScaling.Group, mu);

    /// <summary>Two completions: lengths 2 and 1 of a 3-wide grid, advantages +1 and −2, ratio 1 (ℓ = ℓ_old).</summary>
    [Theory]
    [InlineData(GrpoLossAggregation.Grpo)]
    [InlineData(GrpoLossAggregation.Bnpo)]
    [InlineData(GrpoLossAggregation.DrGrpo)]
    [InlineData(GrpoLossAggregation.Dapo)]
    public void Aggregations_match_hand_computed_values(GrpoLossAggregation aggregation)
    {
        using var scope = NewDisposeScope();
        var logProbs = tensor(new[] { -0.5f, -1.0f, 0f, -2.0f, 0f, 0f }, [2, 3]);
        var mask = tensor(new[] { true, true, false, true, false, false }, [2, 3]);
        var advantages = tensor(new[] { 1f, -2f });
        // Per-token loss −ρÂ with ρ = 1: completion 0 → −1, −1; completion 1 → +2.
        double expected = aggregation switch
        {
            GrpoLossAggregation.Grpo => ((-1 - 1) / 2.0 + (2 / 1.0)) / 2,     // mean over each completion, then over completions = 0.5
            GrpoLossAggregation.Bnpo => (-1 - 1 + 2) / 3.0,                     // token mean = 0
            GrpoLossAggregation.DrGrpo => (-1 - 1 + 2) / (2.0 * 4),             // sum / (B · L_max), L_max = 4
            _ => (-1 - 1 + 2) / 6.0,                                            // sum / global tokens (6 over the step's micro-batches)
        };
        var result = GrpoLoss.Compute(logProbs, logProbs.detach(), null, advantages, mask, Spec(aggregation), 4, 6);
        Assert.Equal(expected, result.Loss.item<float>(), 6);
    }

    [Fact]
    public void Clipping_and_k3_kl_match_hand_computed_values()
    {
        using var scope = NewDisposeScope();
        var logProbs = tensor(new[] { 0.5f, -0.5f }, [1, 2]);
        var old = tensor(new[] { 0f, 0f }, [1, 2]);
        var reference = tensor(new[] { 0.2f, -0.1f }, [1, 2]);
        var mask = ones(1, 2, ScalarType.Bool);
        var result = GrpoLoss.Compute(logProbs, old, reference, tensor(new[] { 1f }), mask, new GrpoSpec(2, 0.2, 0.28, 0.1, GrpoLossAggregation.Bnpo, RewardScaling.Group, 2), 2, 2);
        // ρ = e^0.5 = 1.6487 > 1.28 with Â > 0: clipped high, term −1.28; ρ = e^−0.5 = 0.6065: −min(0.6065, 0.8) = −0.6065.
        double kl0 = Math.Exp(0.2 - 0.5) - (0.2 - 0.5) - 1, kl1 = Math.Exp(-0.1 + 0.5) - (-0.1 + 0.5) - 1;
        double expected = ((-1.28 + (0.1 * kl0)) + (-Math.Exp(-0.5) + (0.1 * kl1))) / 2;
        Assert.Equal(expected, result.Loss.item<float>(), 5);
        Assert.Equal(0.5, result.ClipHigh, 6);
        Assert.Equal(0, result.ClipLow, 6);
        Assert.Equal((kl0 + kl1) / 2, result.KlMean, 5);
    }

    [Fact]
    public void Advantages_are_group_z_scores_and_zero_spread_gives_zero()
    {
        var a = GrpoLoss.Advantages([1, 0, 0.5, 0.5], [7, 7, 3, 3], 2, RewardScaling.Group);
        double std = Math.Sqrt(0.5);
        Assert.Equal(0.5 / (std + 1e-4), a[0], 9);
        Assert.Equal(-0.5 / (std + 1e-4), a[1], 9);
        Assert.Equal([0.0, 0.0], a[2..]);
        Assert.Equal([0.5, -0.5, 0, 0], GrpoLoss.Advantages([1, 0, 0.5, 0.5], [7, 7, 3, 3], 2, RewardScaling.None));
        Assert.Throws<ArgumentException>(() => GrpoLoss.Advantages([1, 0, 0.5, 0.5], [7, 3, 7, 3], 2, RewardScaling.Group)); // members not adjacent
        Assert.Throws<ArgumentException>(() => GrpoLoss.Advantages([1, 0, 0.5], [7, 7, 7], 2, RewardScaling.Group));
    }

    [Fact]
    public void Masks_come_from_positions_not_token_ids()
    {
        // The prompt contains the end token (1) and the completion repeats a prompt token; only positions decide.
        var (tokens, mask) = GrpoTrainer.Layout([new long[] { 5, 1, 2 }, new long[] { 7 }], [new long[] { 5, 1 }, new long[] { 6, 6, 1 }]);
        Assert.Equal(new long[] { 5, 1, 2, 5, 1, 7, 6, 6, 1, 0 }, tokens.data<long>().ToArray());
        Assert.Equal(new[] { false, false, true, true, true, true, true, false }, mask.data<bool>().ToArray());
    }
}
