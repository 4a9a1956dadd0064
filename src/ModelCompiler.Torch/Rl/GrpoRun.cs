using System.Globalization;
using System.Text.Json;
using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using ModelCompiler.Torch.Checkpoints;
using ModelCompiler.Torch.Training;

namespace ModelCompiler.Torch.Rl;

/// <summary>The outcome of a GRPO run.</summary>
/// <param name="Before">Evaluation of the starting model.</param>
/// <param name="After">Evaluation after the last step.</param>
/// <param name="Steps">Steps taken.</param>
/// <param name="Directory">The run folder.</param>
/// <param name="NoSignal">Why the run could not learn, when pass@G was 0 before RL; null otherwise.</param>
public sealed record GrpoResult(GrpoEvaluation Before, GrpoEvaluation After, int Steps, string Directory, string? NoSignal);

/// <summary>
/// A GRPO run from a pre-training run's checkpoint: evaluates first (and refuses to pretend when pass@G is 0: "no learning
/// signal"), trains, evaluates every <see cref="GrpoOptions.EvalEvery"/> steps, and writes metrics.jsonl, checkpoint/ and
/// report.md with charts.
/// </summary>
public sealed class GrpoRun
{
    private readonly ModelSpec _spec;
    private readonly GrpoSpec _grpo;
    private readonly GrpoOptions _options;

    /// <summary>Prepares a run of <paramref name="spec"/> with the GRPO settings <paramref name="grpo"/>.</summary>
    public GrpoRun(ModelSpec spec, GrpoSpec grpo, GrpoOptions options, string directory)
    {
        _spec = spec;
        _grpo = grpo;
        _options = options;
        Directory = directory;
    }

    /// <summary>The run folder.</summary>
    public string Directory { get; }

    /// <summary>Where a crash recovery of the folder is reported; standard error by default.</summary>
    public Action<string> Notice { get; init; } = message => Console.Error.WriteLine("note: " + message);

    /// <summary>The named presets of grpo-reference §4 applied to <paramref name="declared"/> (G is kept).</summary>
    /// <exception cref="ArgumentException">An unknown preset.</exception>
    public static GrpoSpec Preset(GrpoSpec declared, string preset) => preset switch
    {
        "deepseekmath" => declared with { LossAggregation = ModelCompiler.GrpoLossAggregation.Grpo, Beta = 0.04, Epsilon = 0.2, EpsilonHigh = 0, RewardScaling = ModelCompiler.RewardScaling.Group },
        "r1" => declared with { LossAggregation = ModelCompiler.GrpoLossAggregation.Grpo, Beta = 0.001, Epsilon = 10, EpsilonHigh = 0, RewardScaling = ModelCompiler.RewardScaling.Group },
        "dapo" => declared with { LossAggregation = ModelCompiler.GrpoLossAggregation.Dapo, Beta = 0, Epsilon = 0.2, EpsilonHigh = 0.28, RewardScaling = ModelCompiler.RewardScaling.Group },
        "dr_grpo" => declared with { LossAggregation = ModelCompiler.GrpoLossAggregation.DrGrpo, Beta = 0, RewardScaling = ModelCompiler.RewardScaling.None },
        _ => throw new ArgumentException($"unknown preset '{preset}': use deepseekmath, r1, dapo or dr_grpo"),
    };

    /// <summary>Runs GRPO from the checkpoint folder <paramref name="checkpointDirectory"/>.</summary>
    public GrpoResult Run(string checkpointDirectory, Action<GrpoStepReport>? progress = null, Action<GrpoEvaluation, int>? evaluated = null)
    {
        if (System.IO.Directory.Exists(Path.Combine(Directory, "checkpoint"))) throw new IOException($"{Directory} already holds a GRPO run; choose another --out. Nothing was changed.");
        using var policy = Load(checkpointDirectory);
        using var reference = _grpo.Beta != 0 ? Load(checkpointDirectory) : null;
        using var folder = RunFolder.OpenNew(Directory, Notice, "GRPO runs do not resume"); // once the starting checkpoint has loaded: a wrong --from leaves no folder
        IRewardFunction[] rewards = [new AccuracyReward(), new FormatReward()];
        using var trainer = new GrpoTrainer(policy, reference, _grpo, _options, rewards);
        var before = trainer.Evaluate(_options.EvalProblems);
        evaluated?.Invoke(before, 0);
        string metricsPath = Path.Combine(Directory, "metrics.jsonl");
        if (before.PassAtG == 0)
        {
            string why = $"no learning signal: pass@{_grpo.GroupSize} is 0 on the held-out problems, so every group's rewards are equal and GRPO's gradient is zero. "
                + "Pre-train longer or on less noisy data, raise the temperature, or use a larger group.";
            File.WriteAllText(metricsPath, string.Empty);
            return new GrpoResult(before, before, 0, Directory, why);
        }

        var after = before;
        using (var metrics = new StreamWriter(metricsPath))
        {
            // Step 0: the starting model, so that the charts begin where RL begins.
            metrics.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["step"] = 0, ["eval_accuracy"] = before.GreedyAccuracy, ["eval_sampled_accuracy"] = before.SampledAccuracy, ["eval_pass_at_g"] = before.PassAtG,
            }));
            while (trainer.Step < _options.Steps)
            {
                var report = trainer.TrainStep();
                GrpoEvaluation? evaluation = null;
                if (report.Step % _options.EvalEvery == 0 || report.Step == _options.Steps)
                {
                    evaluation = after = trainer.Evaluate(_options.EvalProblems);
                    evaluated?.Invoke(evaluation, report.Step);
                }

                var row = new Dictionary<string, object?>
                {
                    ["step"] = report.Step, ["reward_mean"] = report.RewardMean, ["reward_std"] = report.RewardStd,
                    ["frac_reward_zero_std"] = report.FracRewardZeroStd, ["kl_mean"] = report.KlMean, ["kl_max"] = report.KlMax,
                    ["clip_ratio_low"] = report.ClipRatioLow, ["clip_ratio_high"] = report.ClipRatioHigh, ["entropy"] = report.Entropy,
                    ["completion_length_mean"] = report.CompletionLengthMean, ["completion_terminated_length_mean"] = report.TerminatedLengthMean,
                    ["completion_clipped_ratio"] = report.ClippedRatio, ["generation_seconds"] = report.GenerationSeconds,
                    ["train_seconds"] = report.TrainSeconds, ["grad_norm"] = report.GradientNorm,
                };
                foreach (var (name, mean) in report.RewardMeans) row[$"rewards/{name}/mean"] = mean;
                if (evaluation is not null)
                {
                    row["eval_accuracy"] = evaluation.GreedyAccuracy;
                    row["eval_sampled_accuracy"] = evaluation.SampledAccuracy;
                    row["eval_pass_at_g"] = evaluation.PassAtG;
                }

                if (report.Warnings.Count > 0) row["warnings"] = report.Warnings;
                metrics.WriteLine(JsonSerializer.Serialize(row));
                metrics.Flush();
                progress?.Invoke(report);
            }
        }

        folder.SaveCheckpoint(temp => Checkpoint.Save(policy, temp, HuggingFaceConfig.ToJson(_spec)));
        var result = new GrpoResult(before, after, trainer.Step, Directory, null);
        WriteReport(result, metricsPath);
        return result;
    }

    private DeepSeekCausalLM Load(string checkpointDirectory)
    {
        using var checkpoint = Checkpoint.Open(checkpointDirectory);
        var model = checkpoint.CreateModel(_spec, includeMtp: checkpoint.HasMtp);
        model.Precision.Format = ModelCompiler.NumericFormat.Fp32;
        return model;
    }

    private void WriteReport(GrpoResult result, string metricsPath)
    {
        string text = string.Create(CultureInfo.InvariantCulture, $"""
            # GRPO report

            | | before | after {result.Steps} steps |
            |---|---:|---:|
            | greedy accuracy ({_options.EvalProblems} held-out problems) | {result.Before.GreedyAccuracy:P1} | {result.After.GreedyAccuracy:P1} |
            | sampled accuracy (T = {_options.Temperature}) | {result.Before.SampledAccuracy:P1} | {result.After.SampledAccuracy:P1} |
            | pass@{_grpo.GroupSize} | {result.Before.PassAtG:P1} | {result.After.PassAtG:P1} |

            G = {_grpo.GroupSize}, {_options.PromptsPerStep} prompts per step, ε = {_grpo.Epsilon} / {_grpo.EffectiveEpsilonHigh}, β = {_grpo.Beta},
            aggregation {_grpo.LossAggregation}, scaling {_grpo.RewardScaling}, μ = {_grpo.UpdatesPerRollout}, learning rate {_options.LearningRate}.

            ![reward](reward.png)
            ![accuracy](accuracy.png)
            ![entropy and KL](entropy.png)

            """);
        Charts.Draw(metricsPath, Directory,
        [
            ("reward.png", "Reward", ["reward_mean", "frac_reward_zero_std"]),
            ("accuracy.png", "Held-out accuracy", ["eval_accuracy", "eval_sampled_accuracy", "eval_pass_at_g"]),
            ("entropy.png", "Entropy, KL and clipping", ["entropy", "kl_mean", "clip_ratio_low", "clip_ratio_high"]),
        ]);
        AtomicFile.WriteAllText(Path.Combine(Directory, "report.md"), text);
    }
}
