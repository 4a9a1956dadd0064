using System.Diagnostics;
using System.Globalization;
using ModelCompiler;
using ModelCompiler.Planning;
using ModelCompiler.Torch.Layers;
using ModelCompiler.Torch.Training;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Rl;

/// <summary>The knobs of a GRPO run beyond the declaration's [Grpo] (G, ε, β, aggregation, scaling, μ).</summary>
public sealed record GrpoOptions
{
    /// <summary>RL steps.</summary>
    public int Steps { get; init; } = 40;

    /// <summary>Prompts per step P (the batch is P × G completions).</summary>
    public int PromptsPerStep { get; init; } = 32;

    /// <summary>Learning rate (constant).</summary>
    public double LearningRate { get; init; } = 1e-4;

    /// <summary>Sampling temperature, also used for the log-probs.</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>Maximum completion length L_max (tokens, end token included).</summary>
    public int MaxCompletionLength { get; init; } = 9;

    /// <summary>Seed of the prompt stream and of sampling.</summary>
    public long Seed { get; init; } = 1;

    /// <summary>Steps between evaluations (and the first and last step).</summary>
    public int EvalEvery { get; init; } = 10;

    /// <summary>Held-out problems evaluated.</summary>
    public int EvalProblems { get; init; } = 200;

    /// <summary>Multiplier of every advantage (tests flip it to −1).</summary>
    public double AdvantageSign { get; init; } = 1;
}

/// <summary>One GRPO step's metrics (grpo-reference §6).</summary>
public sealed record GrpoStepReport(
    int Step, double RewardMean, double RewardStd, IReadOnlyDictionary<string, double> RewardMeans, double FracRewardZeroStd,
    double KlMean, double KlMax, double ClipRatioLow, double ClipRatioHigh, double Entropy,
    double CompletionLengthMean, double TerminatedLengthMean, double ClippedRatio, double GenerationSeconds, double TrainSeconds, double GradientNorm,
    IReadOnlyList<string> Warnings);

/// <summary>Greedy and sampled accuracy and pass@G on held-out problems.</summary>
/// <param name="GreedyAccuracy">Greedy exact match.</param>
/// <param name="SampledAccuracy">One sample per problem at the training temperature.</param>
/// <param name="PassAtG">Share of problems with at least one correct completion among G samples.</param>
public sealed record GrpoEvaluation(double GreedyAccuracy, double SampledAccuracy, double PassAtG);

/// <summary>
/// Group Relative Policy Optimization on TinySeek's verifiable arithmetic (grpo-reference §3.1): P prompts per step, each
/// sampled G times with the latent cache (temperature, per-sequence stop at the first end token); rewards from the reward
/// functions (one that throws is reported and scored 0); group-relative advantages; μ passes of the clipped surrogate with
/// the declared aggregation, against stored old log-probs; k3 KL to a frozen reference loaded only when β ≠ 0; masks
/// built from positions. AdamW (β 0.9 / 0.99, no weight decay), gradient clipping at 1.0.
/// </summary>
public sealed class GrpoTrainer : IDisposable
{
    private readonly DeepSeekCausalLM _policy;
    private readonly DeepSeekCausalLM? _reference;
    private readonly GrpoSpec _spec;
    private readonly GrpoOptions _options;
    private readonly IReadOnlyList<IRewardFunction> _rewards;
    private readonly AdamWOptimizer _optimizer;
    private int _zeroSpreadStreak;

    /// <summary>Creates the trainer; <paramref name="reference"/> is required when β ≠ 0 and ignored otherwise.</summary>
    public GrpoTrainer(DeepSeekCausalLM policy, DeepSeekCausalLM? reference, GrpoSpec spec, GrpoOptions options, IReadOnlyList<IRewardFunction> rewards)
    {
        if (spec.Beta != 0 && reference is null) throw new ArgumentException("β ≠ 0 needs a frozen reference model.", nameof(reference));
        _policy = policy;
        _reference = spec.Beta != 0 ? reference : null;
        _spec = spec;
        _options = options;
        _rewards = rewards;
        _optimizer = new AdamWOptimizer(policy.named_parameters(), 0.9, 0.99, weightDecay: 0);
    }

    /// <summary>Steps taken.</summary>
    public int Step { get; private set; }

    /// <summary>One step: sample, score, compute advantages, μ updates.</summary>
    public GrpoStepReport TrainStep()
    {
        int groupSize = _spec.GroupSize, promptCount = _options.PromptsPerStep;
        var problems = Enumerable.Range(0, promptCount).Select(i => ArithmeticTasks.Draw(_options.Seed, ((long)Step * promptCount) + i, 0)).ToList();
        var rows = problems.SelectMany((p, i) => Enumerable.Repeat((Problem: p, Group: i), groupSize)).ToList();

        // Rollout with the current weights.
        var clock = Stopwatch.StartNew();
        _policy.eval();
        var prompts = rows.Select(r => (IReadOnlyList<long>)ArithmeticTasks.Encode(r.Problem.Prompt)).ToList();
        var completions = Generation.Generate(_policy, prompts, _options.MaxCompletionLength, new SamplingOptions(_options.Temperature, 1, StepSeed(Step)), [ArithmeticTasks.End]).Tokens;
        double generationSeconds = clock.Elapsed.TotalSeconds;

        // Rewards: weighted sum; a function that throws is reported and scores 0.
        var warnings = new List<string>();
        var perFunction = _rewards.ToDictionary(f => f.Name, _ => new double[rows.Count]);
        var rewards = new double[rows.Count];
        for (int i = 0; i < rows.Count; i++)
        {
            foreach (var function in _rewards)
            {
                double score;
                try
                {
                    score = function.Score(rows[i].Problem, completions[i]);
                }
                catch (Exception e)
                {
                    warnings.Add($"reward '{function.Name}' threw on '{rows[i].Problem.Prompt}': {e.GetType().Name}: {e.Message}; scored 0");
                    score = 0;
                }

                perFunction[function.Name][i] = score;
                rewards[i] += function.Weight * score;
            }
        }

        var advantages = GrpoLoss.Advantages(rewards, rows.Select(r => r.Group).ToList(), groupSize, _spec.RewardScaling).Select(a => a * _options.AdvantageSign).ToArray();
        int zeroGroups = Enumerable.Range(0, promptCount).Count(g => rewards.Skip(g * groupSize).Take(groupSize).Distinct().Count() == 1);
        _zeroSpreadStreak = zeroGroups == promptCount ? _zeroSpreadStreak + 1 : 0;
        if (_zeroSpreadStreak >= 5) warnings.Add($"every group has had zero reward spread for {_zeroSpreadStreak} steps: no learning signal");
        bool[] terminated = completions.Select(c => c.Count > 0 && c[^1] == ArithmeticTasks.End).ToArray();
        double clippedRatio = 1 - ((double)terminated.Count(t => t) / rows.Count);
        if (clippedRatio > 0.5) warnings.Add($"{clippedRatio:P0} of completions hit the {_options.MaxCompletionLength}-token cap without an end token");

        // Train: μ passes over the rollout.
        clock.Restart();
        using var scope = NewDisposeScope();
        var (tokens, mask) = Layout(prompts, completions);
        long completionTokens = mask.sum().item<long>();
        Tensor oldLogProbs, referenceLogProbs;
        using (no_grad())
        {
            oldLogProbs = LogProbs(_policy, tokens).detach();
            referenceLogProbs = _reference is null ? oldLogProbs : LogProbs(_reference, tokens).detach();
        }

        var advantageTensor = tensor(advantages.Select(a => (float)a).ToArray());
        GrpoLossResult? last = null;
        double norm = 0, entropy = 0;
        _policy.train();
        for (int pass = 0; pass < _spec.UpdatesPerRollout; pass++)
        {
            _optimizer.ZeroGrad();
            var (logProbs, entropyPerToken) = LogProbsAndEntropy(_policy, tokens);
            var old = _spec.UpdatesPerRollout == 1 ? logProbs.detach() : oldLogProbs;
            last = GrpoLoss.Compute(logProbs, old, _reference is null ? null : referenceLogProbs, advantageTensor, mask, _spec, _options.MaxCompletionLength, completionTokens);
            last.Loss.backward();
            norm = nn.utils.clip_grad_norm_(_policy.parameters(), 1.0);
            _optimizer.Step(_options.LearningRate);
            entropy = (entropyPerToken * mask.to(ScalarType.Float32)).sum().item<float>() / Math.Max(1, completionTokens);
        }

        Step++;
        var lengths = completions.Select(c => (double)c.Count).ToList();
        var terminatedLengths = completions.Where((c, i) => terminated[i]).Select(c => (double)c.Count).ToList();
        return new GrpoStepReport(Step, rewards.Average(), GrpoLoss.StandardDeviation(rewards), perFunction.ToDictionary(p => p.Key, p => p.Value.Average()), (double)zeroGroups / promptCount,
            last!.KlMean, last.KlMax, last.ClipLow, last.ClipHigh, entropy,
            lengths.Average(), terminatedLengths.Count == 0 ? 0 : terminatedLengths.Average(), clippedRatio, generationSeconds, clock.Elapsed.TotalSeconds, norm, warnings);
    }

    /// <summary>Greedy accuracy, sampled accuracy and pass@G on problems <c>0 … count−1</c> of the held-out stream.</summary>
    public GrpoEvaluation Evaluate(int count, long seed = PretrainRun.EvalSeed)
    {
        var problems = Enumerable.Range(0, count).Select(i => ArithmeticTasks.Draw(seed, i, 0)).ToList();
        double greedy = PretrainRun.Evaluate(_policy, problems);
        _policy.eval();
        int groupSize = _spec.GroupSize;
        var prompts = problems.SelectMany(p => Enumerable.Repeat((IReadOnlyList<long>)ArithmeticTasks.Encode(p.Prompt), groupSize)).ToList();
        int sampledCorrect = 0, passed = 0;
        for (int start = 0; start < prompts.Count; start += 400)
        {
            var slice = prompts.Skip(start).Take(400).ToList();
            var tokens = Generation.Generate(_policy, slice, _options.MaxCompletionLength, new SamplingOptions(_options.Temperature, 1, seed + start), [ArithmeticTasks.End]).Tokens;
            for (int i = 0; i < slice.Count; i += groupSize)
            {
                var problem = problems[(start + i) / groupSize];
                var correct = Enumerable.Range(i, groupSize).Select(j => ArithmeticTasks.IsCorrect(problem, tokens[j])).ToList();
                if (correct[0]) sampledCorrect++;
                if (correct.Any(c => c)) passed++;
            }
        }

        return new GrpoEvaluation(greedy, (double)sampledCorrect / count, (double)passed / count);
    }

    /// <inheritdoc/>
    public void Dispose() => _optimizer.Dispose();

    /// <summary>Rows prompt + completion, right-padded, and the mask of the grid positions t whose next token (t+1) is a completion token.</summary>
    public static (Tensor Tokens, Tensor Mask) Layout(IReadOnlyList<IReadOnlyList<long>> prompts, IReadOnlyList<IReadOnlyList<long>> completions)
    {
        int rows = prompts.Count, length = Enumerable.Range(0, rows).Max(i => prompts[i].Count + completions[i].Count);
        var ids = new long[rows * length];
        var mask = new bool[rows * (length - 1)];
        for (int r = 0; r < rows; r++)
        {
            var sequence = prompts[r].Concat(completions[r]).ToArray();
            Array.Copy(sequence, 0, ids, r * length, sequence.Length);
            for (int j = 0; j < completions[r].Count; j++) mask[(r * (length - 1)) + prompts[r].Count + j - 1] = true; // predicts completion token j
        }

        return (tensor(ids, [rows, length]), tensor(mask, [rows, length - 1]));
    }

    private Tensor LogProbs(DeepSeekCausalLM model, Tensor tokens) => LogProbsAndEntropy(model, tokens).LogProbs;

    /// <summary>ℓ(token t+1 | tokens ≤ t) at temperature T for every grid position, and the entropy there.</summary>
    private (Tensor LogProbs, Tensor Entropy) LogProbsAndEntropy(DeepSeekCausalLM model, Tensor tokens)
    {
        long length = tokens.shape[1];
        var logits = model.Forward(tokens.narrow(1, 0, length - 1), 0, AttentionMode.Naive, null) / KeptScalars.Of(_options.Temperature);
        var logSoftmax = logits.log_softmax(-1);
        var taken = logSoftmax.gather(2, tokens.narrow(1, 1, length - 1).unsqueeze(2)).squeeze(2);
        var entropy = -(logSoftmax.exp() * logSoftmax).sum(-1).detach();
        return (taken, entropy);
    }

    private long StepSeed(int step) => (_options.Seed * 1_000_003) + step;
}
