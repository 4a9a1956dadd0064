using System.Diagnostics;

namespace ModelCompiler.Inference;

/// <summary>One prompt to continue.</summary>
/// <param name="Prompt">Its token ids.</param>
/// <param name="MaxNewTokens">Tokens to generate at most.</param>
/// <param name="Seed">Seed of its sampling (ignored when greedy).</param>
public sealed record GenerationRequest(IReadOnlyList<int> Prompt, int MaxNewTokens, int Seed = 0);

/// <summary>How tokens are chosen.</summary>
/// <param name="Temperature">0 for greedy; otherwise the logits are divided by it.</param>
/// <param name="TopP">Nucleus sampling's mass, in (0, 1].</param>
/// <param name="StopTokens">Tokens that end a sequence (included in its output).</param>
public sealed record SamplingSettings(float Temperature = 0, float TopP = 1, IReadOnlyCollection<int>? StopTokens = null);

/// <summary>What a batch of generations did.</summary>
/// <param name="Tokens">Each request's new tokens, in request order.</param>
/// <param name="Steps">Forward steps taken.</param>
/// <param name="PrefillTokens">Prompt tokens fed.</param>
/// <param name="DecodeTokens">Tokens generated.</param>
/// <param name="Seconds">Wall time.</param>
public sealed record GenerationReport(IReadOnlyList<IReadOnlyList<int>> Tokens, int Steps, long PrefillTokens, long DecodeTokens, double Seconds);

/// <summary>
/// Continuous batching over an <see cref="InferenceEngine"/>: requests wait in order; between steps a waiting one joins when a
/// cache slot and the pages for its prompt are free, and a sequence leaves, returning its slot and pages, as soon as it
/// stops. Each step feeds every running sequence at once: the next chunk of a prompt (prompts share
/// <see cref="EngineOptions.MaxTokensPerStep"/>) or the last token chosen; a sequence whose prompt is fed chooses a token.
/// </summary>
public sealed class BatchGenerator(InferenceEngine engine)
{
    /// <summary>Generates for every request; a request that can never fit (prompt plus new tokens over the engine's length) is refused first.</summary>
    /// <exception cref="ArgumentException">A request that is empty, too long or holds a token outside the vocabulary.</exception>
    public GenerationReport Generate(IReadOnlyList<GenerationRequest> requests, SamplingSettings? sampling = null)
    {
        sampling ??= new SamplingSettings();
        if (sampling.Temperature < 0 || !float.IsFinite(sampling.Temperature)) throw new ArgumentException($"temperature must be a finite number ≥ 0, not {sampling.Temperature}");
        if (!(sampling.TopP > 0 && sampling.TopP <= 1)) throw new ArgumentException($"top-p must lie in (0, 1], not {sampling.TopP}");
        for (int r = 0; r < requests.Count; r++)
        {
            var request = requests[r];
            if (request.Prompt.Count == 0) throw new ArgumentException($"request {r} has an empty prompt");
            if (request.MaxNewTokens < 1) throw new ArgumentException($"request {r} asks for {request.MaxNewTokens} new tokens");
            if ((long)request.Prompt.Count + request.MaxNewTokens > engine.Options.MaxLength)
            {
                throw new ArgumentException($"request {r}: a prompt of {request.Prompt.Count} tokens and {request.MaxNewTokens} new ones exceed the engine's {engine.Options.MaxLength} positions");
            }

            if (request.Prompt.Any(t => t < 0 || t >= engine.Spec.VocabularySize))
            {
                throw new ArgumentException($"request {r}: token id {request.Prompt.First(t => t < 0 || t >= engine.Spec.VocabularySize)} lies outside the vocabulary [0, {engine.Spec.VocabularySize})");
            }
        }

        var stops = new HashSet<int>(sampling.StopTokens ?? []);
        var outputs = requests.Select(_ => new List<int>()).ToArray();
        var waiting = new Queue<int>(Enumerable.Range(0, requests.Count));
        var running = new List<Running>();
        var clock = Stopwatch.StartNew();
        int steps = 0;
        long prefill = 0, decode = 0;
        var cache = engine.Cache;
        while (waiting.Count > 0 || running.Count > 0)
        {
            // Join: in order, while a slot and the whole sequence's pages are free (so a running sequence never waits for pages).
            while (waiting.Count > 0 && cache.FreeSlots > 0)
            {
                var request = requests[waiting.Peek()];
                int slot = cache.TakeSlot();
                int length = request.Prompt.Count + request.MaxNewTokens;
                if (!cache.CanGrow(slot, length))
                {
                    cache.Release(slot);
                    if (running.Count == 0) throw new InvalidOperationException($"the cache's {cache.Pages} pages cannot hold a sequence of {length} tokens");
                    break;
                }

                cache.Grow(slot, length);
                running.Add(new Running(waiting.Dequeue(), slot));
            }

            if (running.Count == 0)
            {
                throw new InvalidOperationException($"no sequence can start: the cache's {cache.Slots} slots are all held by sequences outside this generator");
            }

            // Feed: prompt chunks share the step's token budget; a decoding sequence feeds one token.
            int budget = engine.Options.MaxTokensPerStep - running.Count(r => r.Fed >= requests[r.Request].Prompt.Count);
            var inputs = new List<StepInput>();
            var feeding = new List<Running>();
            foreach (var sequence in running)
            {
                var prompt = requests[sequence.Request].Prompt;
                if (sequence.Fed < prompt.Count)
                {
                    int take = Math.Min(prompt.Count - sequence.Fed, Math.Max(1, budget));
                    if (budget <= 0) continue;
                    budget -= take;
                    inputs.Add(new StepInput(sequence.Slot, sequence.Fed, prompt.Skip(sequence.Fed).Take(take).ToList()));
                    prefill += take;
                    sequence.Fed += take;
                }
                else
                {
                    inputs.Add(new StepInput(sequence.Slot, sequence.Fed, [sequence.Next]));
                    sequence.Fed++;
                }

                feeding.Add(sequence);
            }

            var logits = engine.Forward(inputs);
            steps++;
            var seeds = feeding.Select(s => requests[s.Request].Seed).ToArray();
            var chosen = engine.Choose(logits, inputs.Count, sampling.Temperature, sampling.TopP, seeds, steps);
            for (int i = 0; i < feeding.Count; i++)
            {
                var sequence = feeding[i];
                var request = requests[sequence.Request];
                if (sequence.Fed < request.Prompt.Count) continue; // more of its prompt to feed
                var output = outputs[sequence.Request];
                output.Add(chosen[i]);
                decode++;
                sequence.Next = chosen[i];
                if (output.Count >= request.MaxNewTokens || stops.Contains(chosen[i]))
                {
                    cache.Release(sequence.Slot);
                    running.Remove(sequence);
                }
            }
        }

        return new GenerationReport(outputs, steps, prefill, decode, clock.Elapsed.TotalSeconds);
    }

    /// <summary>A sequence in the batch: its request, slot, how many of its tokens have been fed, and the token to feed next.</summary>
    private sealed class Running(int request, int slot)
    {
        public int Request { get; } = request;

        public int Slot { get; } = slot;

        public int Fed { get; set; }

        public int Next { get; set; }
    }
}
