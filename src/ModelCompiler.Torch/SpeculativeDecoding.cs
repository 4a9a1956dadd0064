using ModelCompiler.Torch.Layers;
using static TorchSharp.torch;

namespace ModelCompiler.Torch;

/// <summary>What self-speculative decoding did.</summary>
/// <param name="Tokens">The generated tokens: exactly greedy decoding's.</param>
/// <param name="Drafts">Draft tokens the MTP module proposed and the main model checked.</param>
/// <param name="Accepted">Drafts the main model confirmed (each one saves a forward pass).</param>
/// <param name="Forwards">Main-model forward passes after the prompt.</param>
/// <param name="DecodeSeconds">
/// Time after the prompt's pass (the main model's and the MTP module's, which give the first token and the first draft):
/// the checking passes and drafts that give the rest.
/// </param>
public sealed record SpeculativeResult(IReadOnlyList<long> Tokens, int Drafts, int Accepted, int Forwards, double DecodeSeconds)
{
    /// <summary>Accepted / drafts (DeepSeek-V3 reports 85–90% for the second token).</summary>
    public double AcceptanceRate => Drafts == 0 ? 0 : (double)Accepted / Drafts;
}

/// <summary>
/// Greedy decoding with the first MTP module as a one-token draft (deepseek-reference §3.3): each main forward pass checks
/// the pending token and the draft together; when the main model's own choice equals the draft, it yields two tokens. The
/// output is greedy decoding's, token for token; the main model and the MTP module each keep their latent cache.
/// </summary>
public static class SpeculativeDecoding
{
    /// <summary>Generates up to <paramref name="maxNewTokens"/> tokens after <paramref name="prompt"/>, stopping at a stop token.</summary>
    public static SpeculativeResult Generate(DeepSeekCausalLM model, IReadOnlyList<long> prompt, int maxNewTokens, IReadOnlyCollection<long>? stopTokens = null)
    {
        if (model.MtpModules.Count == 0) throw new ArgumentException("Self-speculative decoding needs the model's MTP module (build it with includeMtp).", nameof(model));
        if (prompt.Count == 0) throw new ArgumentException("The prompt needs at least one token.", nameof(prompt));
        var stops = new HashSet<long>(stopTokens ?? []);
        var mtp = model.MtpModules[0];
        int capacity = prompt.Count + maxNewTokens + 2;
        using var _ = no_grad();
        using var cache = model.CreateCache(1, capacity);
        using var mtpCache = new LatentKvCache(model.Spec.Attention, 1, 1, capacity);
        var known = new List<long>(prompt);
        int drafts = 0, accepted = 0, forwards = 0;

        // Prefill: the prompt through the main model; its last logits give the first new token.
        long draft;
        using (var scope = NewDisposeScope())
        {
            var ids = tensor(known.ToArray(), [1, known.Count]);
            using var threads = SmallStep.Enter(known.Count, model.Spec.HiddenSize);
            var hidden = model.Hidden(ids, 0, AttentionMode.Absorbed, cache);
            known.Add(Argmax(model, hidden.narrow(1, known.Count - 1, 1), known.Count - 1));
            // The MTP module at position j reads h_j and the embedding of token j+1; its last position drafts the next token.
            draft = Draft(model, mtp, mtpCache, hidden, known, 0);
        }

        var clock = System.Diagnostics.Stopwatch.StartNew();

        while (known.Count - prompt.Count < maxNewTokens && !stops.Contains(known[^1]))
        {
            using var scope = NewDisposeScope();
            int m = known.Count;                                                     // tokens 0 … m−1 known; m−1 not yet fed
            var ids = tensor(new[] { known[m - 1], draft }, [1, 2]);
            using var threads = SmallStep.Enter(2, model.Spec.HiddenSize);              // the checking pass and the draft
            var hidden = model.Hidden(ids, m - 1, AttentionMode.Absorbed, cache);   // positions m−1 and m
            forwards++;
            drafts++;
            var choices = Generation.EnsureFinite(model.Logits(model.FinalNorm(hidden)), m - 1).argmax(-1).data<long>();   // the main model's token after each position
            long next = choices[0];
            if (next == draft && !stops.Contains(next) && m + 1 - prompt.Count < maxNewTokens)
            {
                accepted++;
                known.Add(draft);
                known.Add(choices[1]);
                draft = Draft(model, mtp, mtpCache, hidden, known, m - 1);
            }
            else
            {
                known.Add(next);
                draft = Draft(model, mtp, mtpCache, hidden.narrow(1, 0, 1), known, m - 1);
            }
        }

        double decodeSeconds = clock.Elapsed.TotalSeconds;
        int produced = Math.Min(known.Count - prompt.Count, maxNewTokens);
        var tokens = known.Skip(prompt.Count).Take(produced).ToList();
        int stop = tokens.FindIndex(stops.Contains);
        return new SpeculativeResult(stop >= 0 ? tokens.Take(stop + 1).ToList() : tokens, drafts, accepted, forwards, decodeSeconds);
    }

    private static long Argmax(DeepSeekCausalLM model, Tensor hidden, long position) => Generation.EnsureFinite(model.Logits(model.FinalNorm(hidden)), position).argmax(-1).item<long>();

    /// <summary>Runs the MTP module over positions start … start+h−1 (h = hidden's length) and returns its draft for the token after the last.</summary>
    private static long Draft(DeepSeekCausalLM model, MtpModule mtp, LatentKvCache cache, Tensor hidden, List<long> known, int start)
    {
        long length = hidden.shape[1];
        var next = tensor(known.Skip(start + 1).Take((int)length).ToArray(), [1, length]);  // token j+1 for each position j
        var state = mtp.Predict(hidden, model.Embed(next), start, AttentionMode.Absorbed, cache[0]);
        return model.Logits(mtp.Normalise(state.narrow(1, length - 1, 1))).argmax(-1).item<long>();
    }
}
