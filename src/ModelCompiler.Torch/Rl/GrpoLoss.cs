using ModelCompiler;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Rl;

/// <summary>The per-batch statistics of the GRPO loss.</summary>
/// <param name="Loss">The aggregated loss (a scalar tensor with its graph).</param>
/// <param name="KlMean">Mean k3 KL over completion tokens (0 when β = 0).</param>
/// <param name="KlMax">Largest per-token k3 KL.</param>
/// <param name="ClipLow">Share of completion tokens clipped low: ρ &lt; 1 − ε and Â &lt; 0.</param>
/// <param name="ClipHigh">Share clipped high: ρ &gt; 1 + ε_high and Â &gt; 0.</param>
public sealed record GrpoLossResult(Tensor Loss, double KlMean, double KlMax, double ClipLow, double ClipHigh);

/// <summary>
/// GRPO's token-level objective (grpo-reference §3): per token L = −min(ρÂ, clip(ρ, 1−ε, 1+ε_high)Â) + β·KL, with
/// ρ = exp(ℓ_θ − ℓ_old) and the k3 estimator KL = exp(ℓ_ref − ℓ_θ) − (ℓ_ref − ℓ_θ) − 1 on a log-ratio clamped to ±20;
/// aggregated as <c>grpo</c> (mean over each completion's tokens, then over completions), <c>bnpo</c> (token mean of the
/// batch), <c>dr_grpo</c> (sum / (completions × maximum completion length)) or <c>dapo</c> (sum / the step's global count of
/// completion tokens).
/// </summary>
public static class GrpoLoss
{
    /// <summary>Computes the loss of one micro-batch.</summary>
    /// <param name="logProbs">ℓ_θ of each completion token [B, T] (with gradient).</param>
    /// <param name="oldLogProbs">ℓ_old [B, T] (no gradient; ℓ_θ detached when μ = 1).</param>
    /// <param name="referenceLogProbs">ℓ_ref [B, T], or null when β = 0.</param>
    /// <param name="advantages">Â per completion [B].</param>
    /// <param name="mask">Completion-token mask [B, T] (built from positions).</param>
    /// <param name="spec">ε, ε_high, β and the aggregation.</param>
    /// <param name="maxCompletionLength">L_max, for dr_grpo.</param>
    /// <param name="globalTokens">The step's completion tokens over all micro-batches, for dapo.</param>
    public static GrpoLossResult Compute(Tensor logProbs, Tensor oldLogProbs, Tensor? referenceLogProbs, Tensor advantages, Tensor mask,
        Planning.GrpoSpec spec, int maxCompletionLength, long globalTokens)
    {
        var m = mask.to(ScalarType.Float32);
        var a = advantages.to(ScalarType.Float32).unsqueeze(1);
        var ratio = (logProbs - oldLogProbs).exp();
        using var scalars = new ScalarScope();
        Scalar low = scalars.Of(1 - spec.Epsilon), high = scalars.Of(1 + spec.EffectiveEpsilonHigh), zero = KeptScalars.OfInteger(0);
        var unclipped = ratio * a;
        var clipped = ratio.clamp(low, high) * a;
        var perToken = -minimum(unclipped, clipped);
        double klMean = 0, klMax = 0;
        if (spec.Beta != 0 && referenceLogProbs is not null)
        {
            var logRatio = (referenceLogProbs - logProbs).clamp(KeptScalars.OfInteger(-20), KeptScalars.OfInteger(20));
            var kl = logRatio.exp() - logRatio - KeptScalars.One;
            perToken = perToken.Plus(kl.Times(spec.Beta));
            using var maskedKl = (kl * m).detach();
            klMean = maskedKl.sum().item<float>() / Math.Max(1, m.sum().item<float>());
            klMax = maskedKl.max().item<float>();
        }

        var masked = perToken * m;
        var loss = spec.LossAggregation switch
        {
            GrpoLossAggregation.Grpo => (masked.sum(1) / m.sum(1).clamp_min(KeptScalars.One)).mean(),
            GrpoLossAggregation.Bnpo => masked.sum() / m.sum().clamp_min(KeptScalars.One),
            GrpoLossAggregation.DrGrpo => masked.sum() / scalars.Of(logProbs.shape[0] * (double)maxCompletionLength),
            _ => masked.sum() / scalars.OfInteger(Math.Max(1, globalTokens)),
        };

        double tokens = Math.Max(1, m.sum().item<float>());
        using var r = ratio.detach();
        double clipLow = (((r < low) & (a < zero)).to(ScalarType.Float32) * m).sum().item<float>() / tokens;
        double clipHigh = (((r > high) & (a > zero)).to(ScalarType.Float32) * m).sum().item<float>() / tokens;
        return new GrpoLossResult(loss, klMean, klMax, clipLow, clipHigh);
    }

    /// <summary>
    /// Group-relative advantages: Â = (r − mean_group) / (std + 1e-4) with the group's Bessel std (<c>group</c>), the batch's
    /// std (<c>batch</c>), or none. A group with zero spread gets Â = 0 for all members, never NaN. Every group must have
    /// exactly <paramref name="groupSize"/> members, adjacent, identified by <paramref name="groupIds"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A group with the wrong number of members, or members not adjacent.</exception>
    public static double[] Advantages(IReadOnlyList<double> rewards, IReadOnlyList<int> groupIds, int groupSize, RewardScaling scaling, double epsilon = 1e-4)
    {
        if (rewards.Count != groupIds.Count || rewards.Count % groupSize != 0) throw new ArgumentException($"{rewards.Count} rewards do not form groups of {groupSize}");
        for (int start = 0; start < rewards.Count; start += groupSize)
        {
            int id = groupIds[start];
            if (Enumerable.Range(start, groupSize).Any(i => groupIds[i] != id) || groupIds.Count(g => g == id) != groupSize)
            {
                throw new ArgumentException($"group {id} does not have exactly {groupSize} adjacent members");
            }
        }

        var result = new double[rewards.Count];
        double batchStd = StandardDeviation(rewards);
        for (int start = 0; start < rewards.Count; start += groupSize)
        {
            var group = rewards.Skip(start).Take(groupSize).ToList();
            double mean = group.Average(), std = StandardDeviation(group);
            for (int i = 0; i < groupSize; i++)
            {
                double centred = group[i] - mean;
                result[start + i] = std == 0 ? 0 : scaling switch
                {
                    RewardScaling.Group => centred / (std + epsilon),
                    RewardScaling.Batch => centred / (batchStd + epsilon),
                    _ => centred,
                };
            }
        }

        return result;
    }

    /// <summary>Bessel-corrected standard deviation (N − 1); 0 for fewer than two values.</summary>
    internal static double StandardDeviation(IReadOnlyList<double> values)
    {
        if (values.Count < 2) return 0;
        double mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
    }
}
