using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using ModelCompiler.Torch.Checkpoints;
using ModelCompiler.Torch.Rl;
using ModelCompiler.Torch.Training;
using Xunit;

namespace ModelCompiler.Torch.Tests;

/// <summary>The SFT ↔ RL alternation runs its phases and keeps only verified-correct samples.</summary>
public sealed class IterativeRecipeTests
{
    [Fact]
    public void Rounds_alternate_rejection_sampling_sft_and_grpo()
    {
        string root = Path.Combine(Path.GetTempPath(), $"mc-r1-{Guid.NewGuid():N}");
        try
        {
            var spec = TestModels.Tiny(mtp: false);
            using (var model = new DeepSeekCausalLM(spec, seed: 2)) Checkpoint.Save(model, Path.Combine(root, "start"), HuggingFaceConfig.ToJson(spec));
            var recipe = new IterativeRecipe(spec, new GrpoSpec(4, 0.2, 0, 0, ModelCompiler.GrpoLossAggregation.Dapo, ModelCompiler.RewardScaling.Group, 1),
                new GrpoOptions { Steps = 2, PromptsPerStep = 4, MaxCompletionLength = 6, EvalProblems = 10 });
            var phases = recipe.Run(Path.Combine(root, "start"), Path.Combine(root, "run"), rounds: 2, prompts: 16, sftSteps: 3);
            Assert.Equal(["rejection sampling + SFT", "GRPO", "rejection sampling + SFT", "GRPO"], phases.Select(p => p.Phase));
            Assert.Equal([1, 1, 2, 2], phases.Select(p => p.Round));
            Assert.True(File.Exists(Path.Combine(root, "run", "checkpoint", "model.safetensors")));
            Assert.Contains("| 2 | GRPO |", File.ReadAllText(Path.Combine(root, "run", "report.md")), StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void Sft_data_cycles_through_its_problems()
    {
        var problems = Enumerable.Range(0, 3).Select(i => ArithmeticTasks.Draw(1, i, 0)).ToList();
        var data = new ProblemListData(problems, 16);
        var (rows, _) = data.Batch(2, 2);
        var expected = Pretrainer.Layout([problems[2], problems[0]], 16).Tokens;
        Assert.Equal(expected.data<long>().ToArray(), rows.data<long>().ToArray());
    }
}
