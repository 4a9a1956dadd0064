using ModelCompiler.Planning;
using ModelCompiler.Torch.Training;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Tests;

/// <summary>The pre-training step: loss goes down, MTP gradients are right, the bias moves by ±γ, accumulation is exact.</summary>
public sealed class PretrainerTests
{
    private static readonly ModelSpec Tiny = TestModels.Tiny(mtp: true);

    private static DeepSeekCausalLM NewModel(long seed)
    {
        return new DeepSeekCausalLM(Tiny, includeMtp: true, seed: seed);
    }

    [Fact]
    public void Loss_falls_on_a_tiny_model()
    {
        using var scope = NewDisposeScope();
        using var model = NewModel(1);
        using var trainer = new Pretrainer(model, new PretrainOptions { Steps = 60, MicroBatchSize = 32, WarmupSteps = 5, LearningRate = 1e-2, Noise = 0 });
        var first = trainer.TrainStep();
        StepReport last = first;
        for (int i = 1; i < 60; i++) last = trainer.TrainStep();
        Assert.True(last.Loss < 0.7 * first.Loss, $"loss {first.Loss:F3} → {last.Loss:F3}");
        Assert.True(last.MtpLoss > 0 && double.IsFinite(last.MtpLoss));
    }

    [Fact]
    public void Eight_by_one_and_four_by_two_give_the_same_gradient()
    {
        using var scope = NewDisposeScope();
        var problems = Enumerable.Range(0, 8).Select(i => ArithmeticTasks.Draw(7, i, 0.5)).ToList();
        var options = new PretrainOptions { Steps = 10, WarmupSteps = 1, LearningRate = 1e-2 };
        using var a = NewModel(3);
        using var b = NewModel(3);
        using var trainerA = new Pretrainer(a, options);
        using var trainerB = new Pretrainer(b, options);
        var reportA = trainerA.TrainStep([Pretrainer.Layout(problems, 16)]);
        var reportB = trainerB.TrainStep([Pretrainer.Layout(problems[..4], 16), Pretrainer.Layout(problems[4..], 16)]);

        Assert.Equal(reportA.Tokens, reportB.Tokens);
        Assert.Equal(reportA.Loss, reportB.Loss, 5);
        Assert.Equal(reportA.GradientNorm, reportB.GradientNorm, 4);
        // The accumulated (clipped) gradients are the update's input; compare them rather than the parameters after AdamW,
        // whose first step divides by √v and so turns float-rounding differences of near-zero gradients into ±lr.
        var gradientsB = b.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad);
        foreach (var (name, parameter) in a.named_parameters())
        {
            if (parameter.grad is null)
            {
                Assert.Null(gradientsB[name]);
                continue;
            }

            double gap = (parameter.grad - gradientsB[name]!).abs().max().item<float>();
            Assert.True(gap <= 1e-6 + (1e-4 * parameter.grad.abs().max().item<float>()), $"{name}: gradients differ by {gap:E2}");
        }
    }

    [Fact]
    public void Selection_bias_moves_by_gamma_against_the_load()
    {
        using var scope = NewDisposeScope();
        using var model = NewModel(5);
        double gamma = 0.01;
        using var trainer = new Pretrainer(model, new PretrainOptions { Steps = 10, MicroBatchSize = 16, BiasUpdateSpeed = gamma });
        var before = model.Layers[1].Moe!.Gate.SelectionBias!.clone();
        var report = trainer.TrainStep();
        var after = model.Layers[1].Moe!.Gate.SelectionBias!;
        long[] loads = report.Loads[0];
        double mean = loads.Average();
        var delta = (after - before).data<float>().ToArray();
        for (int e = 0; e < loads.Length; e++)
        {
            Assert.Equal(gamma * Math.Sign(mean - loads[e]), delta[e], 6);
        }

        Assert.Equal(16 * 15 * Tiny.Moe!.ActivatedExperts, loads.Sum()); // every routed (token, k) counted
        Assert.Contains(delta, d => d > 0);
        Assert.Contains(delta, d => d < 0);
    }

    [Fact]
    public void Mtp_loss_gradient_matches_finite_differences()
    {
        using var scope = NewDisposeScope();
        using var model = NewModel(9);
        using var trainer = new Pretrainer(model, new PretrainOptions());
        var (rows, mask) = Pretrainer.Layout(Enumerable.Range(0, 6).Select(i => ArithmeticTasks.Draw(2, i, 0)).ToList(), 16);
        var weight = model.named_parameters().Single(p => p.name == "model.layers.2.eh_proj.weight").parameter;
        model.zero_grad();
        trainer.Losses(rows, mask).Mtp.backward();
        var gradient = weight.grad!.clone();
        var generator = new Random(4);
        for (int trial = 0; trial < 6; trial++)
        {
            long r = generator.Next((int)weight.shape[0]), c = generator.Next((int)weight.shape[1]);
            const double h = 1e-2;
            double Loss(double shift)
            {
                using var _ = no_grad();
                weight[r, c] = weight[r, c].Plus(shift);
                double value = trainer.Losses(rows, mask).Mtp.item<float>();
                weight[r, c] = weight[r, c] - KeptScalars.Of(shift);
                return value;
            }

            double numeric = (Loss(h) - Loss(-h)) / (2 * h);
            double analytic = gradient[r, c].item<float>();
            Assert.True(Math.Abs(numeric - analytic) <= 0.02 * Math.Max(Math.Abs(analytic), 0.05), $"∂L/∂w[{r},{c}]: autograd {analytic:F5}, finite differences {numeric:F5}");
        }
    }
}
