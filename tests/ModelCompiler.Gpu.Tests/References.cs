using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Planning;
using ModelCompiler.Torch;
using ModelCompiler.Torch.Layers;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Gpu.Tests;

/// <summary>The router kernel against <see cref="MoeGate"/> given the logits (an identity gate weight).</summary>
internal static class Routes
{
    public static void Check(GpuDevice device, dynamic launcher, MoeSpec moe, int tokens, Generator generator, long seed, string what)
    {
        int experts = moe.RoutedExperts, k = moe.ActivatedExperts;
        var logits = randn([tokens, experts], generator: generator).Times(2);
        using var gate = new MoeGate(experts, moe);
        using (no_grad())
        {
            gate.get_parameter("weight")!.copy_(eye(experts));
            gate.SelectionBias?.copy_(randn([experts], generator: generator).Times(0.3));
        }

        var routing = gate.call(logits);
        var bias = gate.SelectionBias ?? zeros(experts);
        using var logitBuffer = Data.Upload(device, logits);
        using var biasBuffer = Data.Upload(device, bias);
        using var chosen = device.Accelerator.Allocate1D(Enumerable.Repeat(-1, tokens * k).ToArray());
        using var weights = Data.Poisoned(device, tokens * k);
        launcher.Route(logitBuffer.View, biasBuffer.View, chosen.View, weights.View);

        var ours = Data.DownloadInts(chosen, tokens, k).to(ScalarType.Int64);
        var mismatch = (ours != routing.Experts).any(1).nonzero();
        Assert.True(mismatch.shape[0] == 0, $"{what}: experts differ for {mismatch.shape[0]} of {tokens} tokens, first token {(mismatch.shape[0] > 0 ? mismatch[0, 0].item<long>() : -1)} (seed {seed})");
        Checks.Close(Data.Download(weights, tokens, k), routing.Weights, 1e-5, what + " gate weights", seed);
    }
}

/// <summary>The MLA decode kernel against the absorbed formulation written with einsums, in float64.</summary>
internal static class Attention
{
    public static void Check(GpuDevice device, dynamic launcher, ModelSpec spec, int[] lengths, int capacity, int splits, Generator generator, long seed, string what, double tolerance = 1e-5)
    {
        var a = spec.Attention;
        int batch = lengths.Length, heads = a.Heads, latent = a.KeyValueLoraRank, rope = a.QkRopeHeadDim;
        var queryLatent = Data.RoundBf16(randn([batch, heads, latent], generator: generator));
        var queryRope = Data.RoundBf16(randn([batch, heads, rope], generator: generator));
        var latentCache = Data.RoundBf16(randn([batch, capacity, latent], generator: generator));
        var ropeCache = Data.RoundBf16(randn([batch, capacity, rope], generator: generator));
        for (int b = 0; b < batch; b++)
        {
            // Past each sequence's length the cache holds NaN: the kernel must never read it into the result.
            latentCache[b, TensorIndex.Slice(lengths[b])] = full(capacity - lengths[b], latent, KeptScalars.Of(double.NaN));
            ropeCache[b, TensorIndex.Slice(lengths[b])] = full(capacity - lengths[b], rope, KeptScalars.Of(double.NaN));
        }

        using var ql = Data.UploadBf16(device, queryLatent);
        using var qr = Data.UploadBf16(device, queryRope);
        using var lc = Data.UploadBf16(device, latentCache);
        using var rc = Data.UploadBf16(device, ropeCache);
        using var ls = device.Accelerator.Allocate1D(lengths);
        using var output = Data.Poisoned(device, (long)batch * heads * latent);
        launcher.MlaDecode(ql.View, qr.View, lc.View, rc.View, ls.View, output.View, capacity, splits);
        var ours = Data.Download(output, batch, heads, latent);

        double scale = RopeMath.SoftmaxScale(spec);
        for (int b = 0; b < batch; b++)
        {
            long n = lengths[b];
            if (n == 0)
            {
                Assert.True(ours[b].eq(KeptScalars.OfInteger(0)).all().item<bool>(), $"{what} MlaDecode: an empty sequence must give zeros (seed {seed})");
                continue;
            }

            var c = latentCache[b].narrow(0, 0, n).to(ScalarType.Float64);
            var kPe = ropeCache[b].narrow(0, 0, n).to(ScalarType.Float64);
            var scores = einsum("hc,tc->ht", queryLatent[b].to(ScalarType.Float64), c).Plus(einsum("hr,tr->ht", queryRope[b].to(ScalarType.Float64), kPe)).Times(scale);
            var expected = einsum("ht,tc->hc", scores.softmax(-1), c);
            Checks.Close(ours[b], expected, tolerance, $"{what} MlaDecode sequence {b} (length {n}, {splits} splits)", seed);
        }
    }
}
