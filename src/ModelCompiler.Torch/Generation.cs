using ModelCompiler.Torch.Layers;
using static TorchSharp.torch;

namespace ModelCompiler.Torch;

/// <summary>How tokens are chosen.</summary>
/// <param name="Temperature">0 for greedy; otherwise logits are divided by it before sampling.</param>
/// <param name="TopP">Nucleus sampling: sample among the smallest set of tokens whose probability reaches this (1 = all).</param>
/// <param name="Seed">Seed of the sampler.</param>
public sealed record SamplingOptions(double Temperature = 0, double TopP = 1, long Seed = 0)
{
    /// <summary>Greedy decoding.</summary>
    public static SamplingOptions Greedy { get; } = new();
}

/// <summary>The continuation of each prompt, and what generation cost.</summary>
/// <param name="Tokens">Per prompt, the generated tokens (stopping at, and including, the first stop token).</param>
/// <param name="PrefillTokensPerSecond">Prompt tokens processed per second during prefill.</param>
/// <param name="DecodeTokensPerSecond">Generated tokens per second during decode (all sequences together).</param>
/// <param name="CacheBytesPerToken">KV-cache bytes allocated per token of one sequence.</param>
/// <param name="DecodeSeconds">Time after the prompt's pass (which gives the first token): the steps that give the rest.</param>
public sealed record GenerationResult(IReadOnlyList<IReadOnlyList<long>> Tokens, double PrefillTokensPerSecond, double DecodeTokensPerSecond, long CacheBytesPerToken, double DecodeSeconds);

/// <summary>Generation stopped because the model's logits were NaN or infinite; the message names the sequence and position.</summary>
public sealed class NonFiniteLogitsException(string message) : Exception(message);

/// <summary>
/// Autoregressive generation over MLA's latent cache, as DeepSeek's official <c>generate</c>: one prefill over the shortest
/// prompt (naive or absorbed prompts alike write the latent cache through absorbed attention), then one token per step for
/// the whole batch; positions still inside a longer prompt take the prompt's token instead of the sampled one; a sequence
/// stops at its first stop token.
/// </summary>
public static class Generation
{
    /// <summary>Generates up to <paramref name="maxNewTokens"/> tokens for each prompt.</summary>
    public static GenerationResult Generate(DeepSeekCausalLM model, IReadOnlyList<IReadOnlyList<long>> prompts, int maxNewTokens,
        SamplingOptions? sampling = null, IReadOnlyCollection<long>? stopTokens = null, bool useCache = true, ScalarType cacheType = ScalarType.Float32)
    {
        ArgumentOutOfRangeException.ThrowIfZero(prompts.Count);
        if (prompts.Any(p => p.Count == 0)) throw new ArgumentException("Every prompt needs at least one token.", nameof(prompts));
        sampling ??= SamplingOptions.Greedy;
        var stops = new HashSet<long>(stopTokens ?? []);
        int batch = prompts.Count, shortest = prompts.Min(p => p.Count), longest = prompts.Max(p => p.Count);
        int total = longest + maxNewTokens;
        var tokens = new long[batch, total];
        var generated = Enumerable.Range(0, batch).Select(_ => new List<long>()).ToArray();
        var finished = new bool[batch];
        using var _ = no_grad();
        var random = new Random(unchecked((int)sampling.Seed));
        using var cache = useCache ? model.CreateCache(batch, total, cacheType) : null;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        double prefillSeconds = 0;
        long decodeSteps = 0;

        int position = shortest; // tokens[.., 0..position) are known for every sequence
        for (int b = 0; b < batch; b++) for (int t = 0; t < prompts[b].Count; t++) tokens[b, t] = prompts[b][t];
        int start = 0;
        while (position < total && !finished.All(f => f))
        {
            using var scope = NewDisposeScope();
            int from = useCache ? start : 0;
            var input = tensor(Slice(tokens, batch, from, position), [batch, position - from]);
            using var threads = SmallStep.Enter(input.numel(), model.Spec.HiddenSize);
            var logits = useCache
                ? model.Forward(input, from, AttentionMode.Absorbed, cache)
                : model.Forward(input, 0, AttentionMode.Naive, null);
            var last = EnsureFinite(logits.select(1, -1), position);
            if (start == 0) prefillSeconds = clock.Elapsed.TotalSeconds;
            else decodeSteps++;
            var next = Choose(last, sampling, random);
            for (int b = 0; b < batch; b++)
            {
                bool inPrompt = position < prompts[b].Count;
                tokens[b, position] = inPrompt ? prompts[b][position] : next[b];
                if (inPrompt || finished[b]) continue;
                generated[b].Add(next[b]);
                if (stops.Contains(next[b]) || generated[b].Count == maxNewTokens) finished[b] = true;
            }

            start = position;
            position++;
        }

        double decodeSeconds = clock.Elapsed.TotalSeconds - prefillSeconds;
        return new GenerationResult(generated, shortest * batch / Math.Max(prefillSeconds, 1e-9), decodeSteps * batch / Math.Max(decodeSeconds, 1e-9), cache?.BytesPerToken ?? 0, decodeSeconds);
    }

    /// <summary>
    /// Returns <paramref name="logits"/> [B, …], the logits of position <paramref name="position"/>, after checking that every
    /// one is finite: no token is ever chosen from NaN.
    /// </summary>
    /// <exception cref="NonFiniteLogitsException">A NaN or infinite logit; the message names the sequence.</exception>
    internal static Tensor EnsureFinite(Tensor logits, long position)
    {
        using var finite = isfinite(logits);
        if (finite.all().item<bool>()) return logits;
        using var rows = finite.view(logits.shape[0], -1).all(1);
        long row = rows.logical_not().nonzero()[0, 0].item<long>();
        throw new NonFiniteLogitsException($"the model's logits are not finite (NaN or infinity) for sequence {row} at position {position}: "
            + "check the checkpoint's weights (each is checked when it loads) and the prompt; no token was chosen from them");
    }

    private static long[] Slice(long[,] tokens, int batch, int from, int to)
    {
        var result = new long[batch * (to - from)];
        for (int b = 0; b < batch; b++) for (int t = from; t < to; t++) result[(b * (to - from)) + t - from] = tokens[b, t];
        return result;
    }

    /// <summary>Greedy (argmax) or temperature / top-p sampling, one token per row of <paramref name="logits"/> [B, V].</summary>
    private static long[] Choose(Tensor logits, SamplingOptions options, Random random)
    {
        if (options.Temperature <= 0) return logits.argmax(-1).data<long>().ToArray();
        var probabilities = logits.to(ScalarType.Float64).div(KeptScalars.Of(options.Temperature)).softmax(-1);
        int rows = (int)probabilities.shape[0];
        var result = new long[rows];
        for (int row = 0; row < rows; row++)
        {
            var p = probabilities[row].data<double>().ToArray();
            var order = Enumerable.Range(0, p.Length).OrderByDescending(i => p[i]).ToArray();
            double kept = 0;
            int count = 0;
            while (count < order.Length && (count == 0 || kept < options.TopP)) kept += p[order[count++]];
            double draw = random.NextDouble() * kept, running = 0;
            result[row] = order[count - 1];
            for (int i = 0; i < count; i++)
            {
                running += p[order[i]];
                if (draw < running)
                {
                    result[row] = order[i];
                    break;
                }
            }
        }

        return result;
    }
}
