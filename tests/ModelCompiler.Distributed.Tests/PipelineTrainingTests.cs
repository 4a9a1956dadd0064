using System.Globalization;
using System.Text.RegularExpressions;
using ModelCompiler.Torch;
using ModelCompiler.Torch.Training;
using Xunit;

namespace ModelCompiler.Distributed.Tests;

/// <summary>
/// Five TinySeek pre-training steps (seed 7) across MPI ranks give the single-process losses within 1e-5: the pipeline
/// executor computes the same step, only the order of floating-point sums differs.
/// </summary>
public sealed partial class PipelineTrainingTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private static readonly Lazy<(double Loss, double Mtp)[]> s_single = new(() =>
    {
        using var model = new DeepSeekCausalLM(Samples.TinySeek.TinySeek.Spec, includeMtp: true, seed: 7);
        using var trainer = new Pretrainer(model, PipelineOptions.Test);
        return Enumerable.Range(0, 5).Select(_ => trainer.TrainStep()).Select(r => (r.Loss, r.MtpLoss)).ToArray();
    });

    [Theory]
    [InlineData("1f1b", 2, 4)]
    [InlineData("dualpipe", 2, 4)]
    [InlineData("zbh1", 2, 4)]
    [InlineData("1f1b", 4, 4)]
    [InlineData("dualpipe", 4, 8)]
    [InlineData("dualpipev", 2, 4)]
    public void Pipelined_steps_give_the_single_process_losses(string schedule, int ranks, int microBatches)
    {
        var (code, output, _) = MpiTests.Run(ranks, "pretrain", schedule, "5", microBatches.ToString(CultureInfo.InvariantCulture));
        Assert.True(code == 0, output);
        var steps = StepLine().Matches(output).Select(m => (double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture), double.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture))).ToArray();
        Assert.Equal(5, steps.Length);
        var single = s_single.Value;
        for (int i = 0; i < 5; i++)
        {
            Assert.True(Math.Abs(steps[i].Item1 - single[i].Loss) <= 1e-5, $"step {i + 1}: loss {steps[i].Item1:R} on {ranks} ranks ({schedule}) vs {single[i].Loss:R} in one process");
            Assert.True(Math.Abs(steps[i].Item2 - single[i].Mtp) <= 1e-5, $"step {i + 1}: MTP loss {steps[i].Item2:R} vs {single[i].Mtp:R}");
        }

        Assert.True(single[4].Loss < single[0].Loss, "the reference run does not learn");
        log.WriteLine($"{schedule} on {ranks} ranks, {microBatches} micro-batches: max |Δloss| = {Enumerable.Range(0, 5).Max(i => Math.Abs(steps[i].Item1 - single[i].Loss)):E2}, max |ΔMTP| = {Enumerable.Range(0, 5).Max(i => Math.Abs(steps[i].Item2 - single[i].Mtp)):E2}; losses {single[0].Loss:F4} → {single[4].Loss:F4}");
    }

    [GeneratedRegex(@"step (\d+) loss (\S+) mtp (\S+)")]
    private static partial Regex StepLine();
}
