using System.Globalization;
using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using ModelCompiler.Torch.Checkpoints;
using ModelCompiler.Torch.Training;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Rl;

/// <summary>A fixed list of problems as a data stream (rows repeat when positions pass the end).</summary>
/// <param name="Problems">The problems, answers as they should be learned.</param>
/// <param name="RowLength">Tokens per row.</param>
public sealed record ProblemListData(IReadOnlyList<Problem> Problems, int RowLength) : IPretrainData
{
    /// <inheritdoc/>
    public (Tensor Tokens, Tensor TargetMask) Batch(long position, int count) =>
        Pretrainer.Layout(Enumerable.Range(0, count).Select(i => Problems[(int)((position + i) % Problems.Count)]).ToList(), RowLength);
}

/// <summary>One phase of the alternation and the model's evaluation after it.</summary>
/// <param name="Round">1-based round.</param>
/// <param name="Phase">"rejection sampling + SFT" or "GRPO".</param>
/// <param name="Evaluation">Held-out evaluation after the phase.</param>
/// <param name="Detail">What the phase did (samples kept, steps).</param>
public sealed record RecipePhase(int Round, string Phase, GrpoEvaluation Evaluation, string Detail);

/// <summary>
/// DeepSeek-R1's alternation (grpo-reference §1, reference §6.6): rejection sampling — sample G completions per prompt from
/// the current policy, keep one verified-correct completion per prompt — then supervised fine-tuning on the kept samples,
/// then GRPO; repeated for a number of rounds. Writes the final weights to <c>checkpoint/</c> and a report.
/// </summary>
public sealed class IterativeRecipe
{
    private readonly ModelSpec _spec;
    private readonly GrpoSpec _grpo;
    private readonly GrpoOptions _rl;

    /// <summary>Prepares the recipe.</summary>
    public IterativeRecipe(ModelSpec spec, GrpoSpec grpo, GrpoOptions rl)
    {
        _spec = spec;
        _grpo = grpo;
        _rl = rl;
    }

    /// <summary>Runs <paramref name="rounds"/> rounds from the checkpoint in <paramref name="checkpointDirectory"/> into <paramref name="directory"/>.</summary>
    public IReadOnlyList<RecipePhase> Run(string checkpointDirectory, string directory, int rounds = 2, int prompts = 256, int sftSteps = 60, Action<RecipePhase>? progress = null)
    {
        if (Directory.Exists(Path.Combine(directory, "checkpoint"))) throw new IOException($"{directory} already holds a run; choose another --out. Nothing was changed.");
        DeepSeekCausalLM policy;
        using (var checkpoint = Checkpoint.Open(checkpointDirectory))
        {
            policy = checkpoint.CreateModel(_spec, includeMtp: checkpoint.HasMtp);
        }

        using var _ = policy;
        using var folder = RunFolder.OpenNew(directory, message => Console.Error.WriteLine("note: " + message), "these runs do not resume"); // once the starting checkpoint has loaded: a wrong --from leaves no folder

        policy.Precision.Format = ModelCompiler.NumericFormat.Fp32;
        var phases = new List<RecipePhase>();
        void Record(RecipePhase phase)
        {
            phases.Add(phase);
            progress?.Invoke(phase);
        }

        IRewardFunction[] rewards = [new AccuracyReward(), new FormatReward()];
        for (int round = 1; round <= rounds; round++)
        {
            // Rejection sampling: G samples per prompt from the current policy; keep one correct completion per prompt.
            var problems = Enumerable.Range(0, prompts).Select(i => ArithmeticTasks.Draw(_rl.Seed + 1000 + round, i, 0)).ToList();
            var kept = RejectionSample(policy, problems, round);
            string detail = string.Create(CultureInfo.InvariantCulture, $"{kept.Count} of {prompts} prompts had a correct sample; {sftSteps} SFT steps on them");
            if (kept.Count > 0)
            {
                var sft = new PretrainOptions { Steps = sftSteps, MicroBatchSize = Math.Min(64, kept.Count), LearningRate = 1e-3, WarmupSteps = Math.Max(1, sftSteps / 10), Seed = _rl.Seed + round, BiasUpdateSpeed = 0 };
                using var trainer = new Pretrainer(policy, sft, new ProblemListData(kept, sft.RowLength));
                while (trainer.Step < sft.Steps) trainer.TrainStep();
            }

            using (var evaluator = new GrpoTrainer(policy, null, _grpo with { Beta = 0 }, _rl, rewards))
            {
                Record(new RecipePhase(round, "rejection sampling + SFT", evaluator.Evaluate(_rl.EvalProblems), detail));
            }

            using var reference = _grpo.Beta != 0 ? Copy(policy) : null;
            using var rl = new GrpoTrainer(policy, reference, _grpo, _rl with { Seed = _rl.Seed + (round * 7919) }, rewards);
            while (rl.Step < _rl.Steps) rl.TrainStep();
            Record(new RecipePhase(round, "GRPO", rl.Evaluate(_rl.EvalProblems), $"{_rl.Steps} steps, {_rl.PromptsPerStep} prompts × G {_grpo.GroupSize}"));
        }

        folder.SaveCheckpoint(temp => Checkpoint.Save(policy, temp, HuggingFaceConfig.ToJson(_spec)));
        AtomicFile.WriteAllText(Path.Combine(directory, "report.md"), "# Iterative SFT ↔ RL\n\n| round | phase | greedy | sampled | pass@G | |\n|---|---|---:|---:|---:|---|\n"
            + string.Join("\n", phases.Select(p => string.Create(CultureInfo.InvariantCulture,
                $"| {p.Round} | {p.Phase} | {p.Evaluation.GreedyAccuracy:P1} | {p.Evaluation.SampledAccuracy:P1} | {p.Evaluation.PassAtG:P1} | {p.Detail} |"))) + "\n");
        return phases;
    }

    private List<Problem> RejectionSample(DeepSeekCausalLM policy, IReadOnlyList<Problem> problems, int round)
    {
        policy.eval();
        int g = _grpo.GroupSize;
        var prompts = problems.SelectMany(p => Enumerable.Repeat((IReadOnlyList<long>)ArithmeticTasks.Encode(p.Prompt), g)).ToList();
        var samples = Generation.Generate(policy, prompts, _rl.MaxCompletionLength, new SamplingOptions(_rl.Temperature, 1, _rl.Seed + (round * 104729)), [ArithmeticTasks.End]).Tokens;
        var kept = new List<Problem>();
        for (int i = 0; i < problems.Count; i++)
        {
            if (Enumerable.Range(i * g, g).Any(j => ArithmeticTasks.IsCorrect(problems[i], samples[j])))
            {
                kept.Add(problems[i] with { Answer = problems[i].CorrectAnswer }); // the verified completion is exactly the correct answer
            }
        }

        return kept;
    }

    private DeepSeekCausalLM Copy(DeepSeekCausalLM policy)
    {
        var copy = new DeepSeekCausalLM(_spec, includeMtp: policy.MtpModules.Count > 0);
        using (no_grad())
        {
            var source = policy.state_dict();
            foreach (var (name, tensor) in copy.state_dict()) tensor.copy_(source[name]);
        }

        copy.Precision.Format = ModelCompiler.NumericFormat.Fp32;
        return copy;
    }
}
