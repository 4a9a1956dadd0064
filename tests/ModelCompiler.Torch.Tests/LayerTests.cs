using ModelCompiler.Planning;
using ModelCompiler.Torch.Layers;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Tests;

/// <summary>The layers against their formulas, written out independently on fresh random inputs.</summary>
public sealed class LayerTests
{
    [Fact]
    public void RmsNorm_is_w_times_x_over_rms()
    {
        using var scope = NewDisposeScope();
        using var norm = new RmsNorm(24, 1e-6);
        using (no_grad()) norm.Weight.copy_(randn(24));
        var x = randn(5, 24);
        var expected = x * norm.Weight / x.pow(KeptScalars.OfInteger(2)).mean([-1L], keepdim: true).Plus(1e-6).sqrt();
        Assert.True((norm.call(x) - expected).abs().max().item<float>() < 1e-5);
    }

    [Fact]
    public void Yarn_keeps_high_frequencies_and_divides_low_ones_by_the_factor()
    {
        var yarn = new YarnSpec(40, 4096, 32, 1, 1, 1);
        var rope = new RotaryEmbedding(64, 10000, yarn);
        var plain = new RotaryEmbedding(64, 10000, null);
        for (int i = 0; i < 32; i++)
        {
            double ratio = rope.Frequencies[i] / plain.Frequencies[i];
            if (i <= 10) Assert.Equal(1.0, ratio, 12);
            else if (i >= 23) Assert.Equal(1 / 40.0, ratio, 12);
            else Assert.Equal(1 - ((i - 10) / 13.0 * (1 - (1 / 40.0))), ratio, 12); // linear blend between
        }
    }

    [Fact]
    public void Rope_rotates_interleaved_pairs()
    {
        using var scope = NewDisposeScope();
        var rope = new RotaryEmbedding(8, 10000, null);
        var x = randn(1, 3, 2, 8);
        var rotated = rope.Apply(x, 5);
        for (int t = 0; t < 3; t++)
        {
            for (int i = 0; i < 4; i++)
            {
                double angle = (5 + t) * rope.Frequencies[i];
                var re = x[0, t, TensorIndex.Colon, 2 * i];
                var im = x[0, t, TensorIndex.Colon, (2 * i) + 1];
                var expectedRe = re.Times(Math.Cos(angle)) - im.Times(Math.Sin(angle));
                var expectedIm = re.Times(Math.Sin(angle)).Plus(im.Times(Math.Cos(angle)));
                Assert.True((rotated[0, t, TensorIndex.Colon, 2 * i] - expectedRe).abs().max().item<float>() < 1e-5);
                Assert.True((rotated[0, t, TensorIndex.Colon, (2 * i) + 1] - expectedIm).abs().max().item<float>() < 1e-5);
            }
        }
    }

    [Fact]
    public void Router_masks_dropped_groups_with_minus_infinity_as_DeepSeek_does()
    {
        // One token, 8 experts in 4 groups of 2, keep 1 group, top-2. The bias makes every selection score negative, so a
        // 0.0 mask (transformers) would pick experts outside the kept group; −∞ (DeepSeek's official code) may not.
        using var scope = NewDisposeScope();
        var spec = new MoeSpec(8, 2, 4, 0, ExpertScoring.Sigmoid, 4, 1, 2.0, true, LoadBalancing.AuxiliaryLossFree, 0.001, 0, 0, 0, 0);
        using var gate = new MoeGate(3, spec);
        using (no_grad())
        {
            foreach (var (name, p) in gate.named_parameters()) p.copy_(zeros_like(p));
            gate.SelectionBias!.copy_(tensor(new[] { -5f, -5f, -2f, -2.1f, -6f, -6f, -7f, -7f }));
        }

        var routing = gate.call(randn(1, 3));
        var experts = routing.Experts.data<long>().Order().ToArray();
        Assert.Equal([2L, 3L], experts);                                         // both from group 1, the best group
        Assert.Equal(new[] { 1.0f, 1.0f }, routing.Weights.data<float>().ToArray()); // unbiased scores 0.5 each, normalised, × 2
    }

    [Fact]
    public void Router_scores_groups_by_the_top_two_sum_with_bias_and_the_best_score_without()
    {
        using var scope = NewDisposeScope();
        var logits = randn(6, 16);
        foreach (bool bias in new[] { true, false })
        {
            var spec = new MoeSpec(16, 3, 4, 0, bias ? ExpertScoring.Sigmoid : ExpertScoring.Softmax, 4, 2, 1.5, bias,
                bias ? LoadBalancing.AuxiliaryLossFree : LoadBalancing.AuxiliaryLoss, 0, 0, 0, 0, 0);
            using var gate = new MoeGate(16, spec);
            using (no_grad())
            {
                gate.named_parameters().Single().parameter.copy_(eye(16));                       // logits = x
                gate.SelectionBias?.copy_(randn(16).Times(0.3));
            }

            var routing = gate.call(logits);
            var scores = bias ? logits.sigmoid() : logits.softmax(-1);
            var biasValues = gate.SelectionBias?.data<float>().ToArray() ?? new float[16];
            for (int t = 0; t < 6; t++)
            {
                var s = scores[t].data<float>().ToArray();
                var sel = s.Select((v, i) => v + biasValues[i]).ToArray();
                var groupScore = Enumerable.Range(0, 4).Select(g => bias ? sel.Skip(4 * g).Take(4).OrderDescending().Take(2).Sum() : sel.Skip(4 * g).Take(4).Max()).ToArray();
                var kept = Enumerable.Range(0, 4).OrderByDescending(g => groupScore[g]).Take(2).ToHashSet();
                var chosen = Enumerable.Range(0, 16).Where(i => kept.Contains(i / 4)).OrderByDescending(i => sel[i]).Take(3).ToArray();
                var weights = chosen.Select(i => s[i]).ToArray();
                if (bias) weights = weights.Select(w => w / weights.Sum()).ToArray();
                var got = routing.Experts[t].data<long>().ToArray();
                Assert.Equal(chosen.Select(i => (long)i).Order(), got.Order());
                var gotWeights = routing.Weights[t].data<float>().ToArray();
                for (int k = 0; k < 3; k++) Assert.Equal(weights[Array.IndexOf(chosen, (int)got[k])] * 1.5, gotWeights[k], 1e-5); // a tolerance, not 5-decimal rounding (which splits values straddling a boundary)
            }
        }
    }

    [Fact]
    public void Grouped_dispatch_equals_running_every_token_through_its_experts()
    {
        using var scope = NewDisposeScope();
        using var moe = RandomMoe();

        var x = randn(2, 7, 10);
        var y = moe.call(x);
        var flat = x.view(-1, 10);
        var routing = moe.Gate.call(flat);
        var experts = moe.named_children().Single(c => c.name == "experts").module;
        var shared = moe.named_children().Single(c => c.name == "shared_experts").module;
        for (int t = 0; t < 14; t++)
        {
            var token = flat[t].unsqueeze(0);
            var expected = ((nn.Module<Tensor, Tensor>)shared).call(token);
            for (int k = 0; k < 3; k++)
            {
                int e = (int)routing.Experts[t, k].item<long>();
                var expert = (nn.Module<Tensor, Tensor>)experts.named_children().Single(c => c.name == e.ToString(System.Globalization.CultureInfo.InvariantCulture)).module;
                expected = expected.Plus(expert.call(token) * routing.Weights[t, k]);
            }

            Assert.True((y.view(-1, 10)[t] - expected.squeeze(0)).abs().max().item<float>() < 1e-5, $"token {t}");
        }
    }

    [Fact]
    public void Batched_decoding_dispatch_equals_the_grouped_one()
    {
        using var scope = NewDisposeScope();
        using var moe = RandomMoe();

        var x = randn(1, 5, 10);                         // 15 (token, expert) pairs: the batched path under no_grad
        var grouped = moe.call(x).detach();              // gradients on: the grouped, per-expert path
        var groupedLoads = moe.LastLoads!.ToArray();
        Tensor batched;
        using (no_grad()) batched = moe.call(x);
        Assert.True((batched - grouped).abs().max().item<float>() < 1e-5, "batched and grouped dispatch differ");
        Assert.Equal(groupedLoads, moe.LastLoads);

        using (no_grad()) moe.call(randn(1, 30, 10));     // 90 pairs: above the batched limit, grouped again
        Assert.Equal(90, moe.LastLoads!.Sum());
    }

    /// <summary>8 experts in 2 groups, top-3, 2 shared, width 10: random weights and selection bias.</summary>
    private static MixtureOfExperts RandomMoe()
    {
        var moe = new MixtureOfExperts(10, new MoeSpec(8, 3, 12, 2, ExpertScoring.Sigmoid, 2, 1, 2.5, true, LoadBalancing.AuxiliaryLossFree, 0.001, 0, 0, 0, 0));
        using (no_grad())
        {
            foreach (var (_, p) in moe.named_parameters()) p.copy_(randn(p.shape).Times(0.3));
            moe.Gate.SelectionBias!.copy_(randn(8).Times(0.05));
        }

        return moe;
    }
}
