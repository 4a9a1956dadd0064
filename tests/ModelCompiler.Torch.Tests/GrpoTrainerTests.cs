using ModelCompiler.Checkpoints;
using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using ModelCompiler.Torch.Checkpoints;
using ModelCompiler.Torch.Rl;
using ModelCompiler.Torch.Training;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Tests;

/// <summary>The GRPO loop's behaviour on a tiny model (grpo-reference §5.3's checks).</summary>
public sealed class GrpoTrainerTests
{
    private static readonly ModelSpec Tiny = TestModels.Tiny(mtp: false);

    private static readonly GrpoOptions Options = new() { Steps = 10, PromptsPerStep = 8, LearningRate = 1e-2, MaxCompletionLength = 4, EvalProblems = 20 };

    /// <summary>Rewards a completion whose first token is the digit 1 — some spread on a random model, learnable in a few steps.</summary>
    private sealed class FirstTokenIsOne : IRewardFunction
    {
        public string Name => "first_is_one";

        public double Weight => 1;

        public double Score(Problem problem, IReadOnlyList<long> completion) => completion.Count > 0 && completion[0] == ArithmeticTasks.Encode("1")[0] ? 1 : 0;
    }

    private sealed class Constant : IRewardFunction
    {
        public string Name => "constant";

        public double Weight => 1;

        public double Score(Problem problem, IReadOnlyList<long> completion) => 1;
    }

    private sealed class Throws : IRewardFunction
    {
        public string Name => "throws";

        public double Weight => 1;

        public double Score(Problem problem, IReadOnlyList<long> completion) => throw new InvalidOperationException("broken reward");
    }

    private static DeepSeekCausalLM Model() => new(Tiny, seed: 21);

    private static GrpoSpec Spec(double beta = 0, int mu = 1) => new(8, 0.2, 0, beta, GrpoLossAggregation.Dapo, RewardScaling.Group, mu);

    [Fact]
    public void A_constant_reward_gives_exactly_zero_policy_gradient()
    {
        using var scope = NewDisposeScope();
        using var model = Model();
        var before = model.state_dict().ToDictionary(p => p.Key, p => p.Value.clone());
        using var trainer = new GrpoTrainer(model, null, Spec(), Options, [new Constant()]);
        var report = trainer.TrainStep();
        Assert.Equal(1, report.FracRewardZeroStd);
        Assert.Equal(0, report.GradientNorm);
        foreach (var (name, value) in model.state_dict()) Assert.True((value - before[name]).abs().max().item<float>() == 0, $"{name} moved");
    }

    [Fact]
    public void Two_updates_per_rollout_clip_and_one_does_not()
    {
        using var scope = NewDisposeScope();
        double Clip(int mu)
        {
            using var model = Model();
            using var trainer = new GrpoTrainer(model, null, Spec(mu: mu), Options with { LearningRate = 5e-2 }, [new FirstTokenIsOne()]);
            return Enumerable.Range(0, 3).Select(_ => trainer.TrainStep()).Sum(r => r.ClipRatioLow + r.ClipRatioHigh);
        }

        Assert.Equal(0, Clip(1));
        Assert.True(Clip(2) > 0);
    }

    [Fact]
    public void Kl_is_zero_at_the_first_step_and_positive_later()
    {
        using var scope = NewDisposeScope();
        using var model = Model();
        using var reference = Model();
        using var trainer = new GrpoTrainer(model, reference, Spec(beta: 0.04), Options, [new FirstTokenIsOne()]);
        Assert.Equal(0, trainer.TrainStep().KlMean, 9);
        Assert.True(trainer.TrainStep().KlMean > 0);
    }

    [Fact]
    public void The_advantage_sign_decides_the_direction_of_learning()
    {
        using var scope = NewDisposeScope();
        double Rate(double sign)
        {
            using var model = Model();
            using var trainer = new GrpoTrainer(model, null, Spec(), Options with { AdvantageSign = sign }, [new FirstTokenIsOne()]);
            var reports = Enumerable.Range(0, 12).Select(_ => trainer.TrainStep()).ToList();
            return reports.TakeLast(3).Average(r => r.RewardMean);
        }

        double up = Rate(1), down = Rate(-1);
        Assert.True(up > 0.5 && down < 0.05, $"reward after 12 steps: {up:F2} with the true advantages, {down:F2} with them flipped");
    }

    [Fact]
    public void Reruns_with_the_same_seed_are_identical_and_a_throwing_reward_is_reported()
    {
        using var scope = NewDisposeScope();
        (double[] Metrics, byte[] Weights) Run()
        {
            using var model = Model();
            using var trainer = new GrpoTrainer(model, null, Spec(), Options, [new FirstTokenIsOne(), new Throws()]);
            var reports = Enumerable.Range(0, 3).Select(_ => trainer.TrainStep()).ToList();
            Assert.All(reports, r => Assert.Contains(r.Warnings, w => w.Contains("reward 'throws' threw", StringComparison.Ordinal)));
            return (reports.SelectMany(r => new[] { r.RewardMean, r.Entropy, r.GradientNorm }).ToArray(), model.state_dict()["lm_head.weight"].bytes.ToArray());
        }

        var first = Run();
        var second = Run();
        Assert.Equal(first.Metrics, second.Metrics);
        Assert.Equal(first.Weights, second.Weights);
    }

    [Fact]
    public void A_missing_starting_checkpoint_is_named_and_leaves_no_run_folder()
    {
        string root = Path.Combine(Path.GetTempPath(), $"mc-grpo-{Guid.NewGuid():N}");
        var error = Assert.Throws<CheckpointException>(() => new GrpoRun(Tiny, Spec(), Options, Path.Combine(root, "run")).Run(Path.Combine(root, "start")));
        Assert.Contains(Path.Combine(root, "start") + ": no such checkpoint folder", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(root));
    }

    [Fact]
    public void Pass_at_g_of_zero_is_reported_as_no_learning_signal()
    {
        string root = Path.Combine(Path.GetTempPath(), $"mc-grpo-{Guid.NewGuid():N}");
        try
        {
            using (var model = Model()) Checkpoint.Save(model, Path.Combine(root, "start"), HuggingFaceConfig.ToJson(Tiny));
            var result = new GrpoRun(Tiny, Spec(), Options, Path.Combine(root, "run")).Run(Path.Combine(root, "start"));
            Assert.Equal(0, result.Before.PassAtG);
            Assert.StartsWith("no learning signal: pass@8 is 0", result.NoSignal, StringComparison.Ordinal);
            Assert.Equal(0, result.Steps);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
