using ModelCompiler.Torch.Training;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Tests;

/// <summary>One set of weights scored under each GEMM input precision.</summary>
public sealed class PrecisionComparisonTests
{
    [Fact]
    public void FP32_is_the_plain_loss_BF16_is_closer_to_it_than_FP8_and_the_format_comes_back()
    {
        using var scope = NewDisposeScope();
        using var model = new DeepSeekCausalLM(TestModels.Tiny(), includeMtp: true);
        RandomCheckpoint.Initialise(model, seed: 5);
        model.Precision.Format = NumericFormat.Fp8E4M3;
        var problems = Enumerable.Range(0, 128).Select(i => ArithmeticTasks.Draw(3, i, 0.6)).ToList();

        var losses = PrecisionComparison.Losses(model, problems, 16);

        Assert.Equal([NumericFormat.Fp32, NumericFormat.Bf16, NumericFormat.Fp8E4M3], losses.Select(l => l.Format));
        Assert.Equal(NumericFormat.Fp8E4M3, model.Precision.Format);
        double fp32 = losses[0].Loss, bf16 = losses[1].Loss, fp8 = losses[2].Loss;
        Assert.True(double.IsFinite(fp8) && fp32 > 0, $"losses {fp32}, {bf16}, {fp8}");
        Assert.True(Math.Abs(bf16 - fp32) < Math.Abs(fp8 - fp32), $"BF16 {bf16} should be nearer FP32 {fp32} than FP8 {fp8}");
        Assert.True(fp8 != fp32 && Math.Abs(fp8 / fp32 - 1) < 0.1, $"FP8 {fp8} against FP32 {fp32}");

        // FP32 is the training objective's cross-entropy on the answer positions, computed directly.
        model.Precision.Format = NumericFormat.Fp32;
        using var _ = no_grad();
        var (tokens, answers) = Pretrainer.Layout(problems, 16);
        var logits = model.forward(tokens.narrow(1, 0, 15));
        var ce = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), tokens.narrow(1, 1, 15).reshape(-1), reduction: nn.Reduction.None);
        var mask = answers.narrow(1, 1, 15).reshape(-1).to(ScalarType.Float32);
        Assert.Equal((ce * mask).sum().item<float>() / mask.sum().item<float>(), fp32, 5);
    }
}
