using System.Globalization;
using System.Text.RegularExpressions;
using ModelCompiler.Torch;
using ModelCompiler.Torch.Training;
using Xunit;

namespace ModelCompiler.Distributed.Tests;

/// <summary>
/// TinySeek's routed experts spread over MPI ranks (each rank its share of the rows and its experts, dispatch and combine by
/// all-to-all): five steps give the single-process losses within 1e-5, every rank ends with the same selection biases, the
/// traffic is what the routing implies, and a rank that dies takes the job down instead of leaving the others waiting.
/// </summary>
public sealed partial class ExpertParallelTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private static readonly Lazy<(double Loss, double Mtp)[]> s_single = new(() =>
    {
        using var model = new DeepSeekCausalLM(Samples.TinySeek.TinySeek.Spec, includeMtp: true, seed: 7);
        using var trainer = new Pretrainer(model, PipelineOptions.Test);
        return Enumerable.Range(0, 5).Select(_ => trainer.TrainStep()).Select(r => (r.Loss, r.MtpLoss)).ToArray();
    });

    [Fact]
    public void Variable_sized_all_to_all_on_the_world_and_on_a_split_communicator()
    {
        var (code, output, _) = MpiTests.Run(3, "alltoall");
        Assert.True(code == 0, output);
        for (int rank = 0; rank < 3; rank++) Assert.Contains($"rank {rank}/3 all-to-all ok", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public void Spread_experts_give_the_single_process_losses_and_the_same_biases_everywhere(int ranks)
    {
        var (code, output, _) = MpiTests.Run(ranks, "experts", "5", "1", "limit");
        Assert.True(code == 0, output);
        var steps = StepLine().Matches(output).Select(m => (Parse(m.Groups[2].Value), Parse(m.Groups[3].Value))).ToArray();
        Assert.Equal(5, steps.Length);
        var single = s_single.Value;
        for (int i = 0; i < 5; i++)
        {
            Assert.True(Math.Abs(steps[i].Item1 - single[i].Loss) <= 1e-5, $"step {i + 1}: loss {steps[i].Item1:R} with experts over {ranks} ranks vs {single[i].Loss:R} in one process");
            Assert.True(Math.Abs(steps[i].Item2 - single[i].Mtp) <= 1e-5, $"step {i + 1}: MTP loss {steps[i].Item2:R} vs {single[i].Mtp:R}");
        }

        var biases = BiasLine().Matches(output).Select(m => (Hash: m.Groups[2].Value, Moved: int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture))).ToList();
        Assert.Equal(ranks, biases.Count);
        Assert.All(biases, b => Assert.Equal(biases[0].Hash, b.Hash)); // the same selection biases, bit for bit
        Assert.True(biases[0].Moved > 0, "the selection biases did not move");
        log.WriteLine($"{ranks} ranks: max |Δloss| = {Enumerable.Range(0, 5).Max(i => Math.Abs(steps[i].Item1 - single[i].Loss)):E2}, max |ΔMTP| = {Enumerable.Range(0, 5).Max(i => Math.Abs(steps[i].Item2 - single[i].Mtp)):E2}");
    }

    [Theory]
    [InlineData("dualpipe", 4)]
    [InlineData("1f1b", 4)]
    public void Experts_spread_inside_pipeline_stages_give_the_single_process_losses(string schedule, int microBatches)
    {
        // Four ranks: two pipelines of two stage ranks, each stage's experts over an expert group of two.
        var (code, output, _) = MpiTests.Run(4, "pretrain", schedule, "5", microBatches.ToString(CultureInfo.InvariantCulture), "experts", "2");
        Assert.True(code == 0, output);
        var steps = StepLine().Matches(output).Select(m => (Parse(m.Groups[2].Value), Parse(m.Groups[3].Value))).ToArray();
        Assert.Equal(5, steps.Length);
        var single = s_single.Value;
        for (int i = 0; i < 5; i++)
        {
            Assert.True(Math.Abs(steps[i].Item1 - single[i].Loss) <= 1e-5, $"step {i + 1}: loss {steps[i].Item1:R} (EP 2 × PP 2, {schedule}) vs {single[i].Loss:R} in one process");
            Assert.True(Math.Abs(steps[i].Item2 - single[i].Mtp) <= 1e-5, $"step {i + 1}: MTP loss {steps[i].Item2:R} vs {single[i].Mtp:R}");
        }

        var biases = BiasLine().Matches(output).Select(m => m.Groups[2].Value).ToList();
        Assert.Equal(4, biases.Count);
        Assert.All(biases, b => Assert.Equal(biases[0], b)); // one set of selection biases on all four ranks
        log.WriteLine($"EP 2 × PP 2 ({schedule}): max |Δloss| = {Enumerable.Range(0, 5).Max(i => Math.Abs(steps[i].Item1 - single[i].Loss)):E2}, max |ΔMTP| = {Enumerable.Range(0, 5).Max(i => Math.Abs(steps[i].Item2 - single[i].Mtp)):E2}");
    }

    [Fact]
    public void Node_limited_routing_cuts_the_bytes_that_leave_a_node()
    {
        // Four ranks in two nodes of two; TinySeek's 8 experts in 2 groups, so a group is a node's 4 experts.
        var limited = Traffic(MpiTests.Run(4, "experts", "1", "2", "limit"));
        var free = Traffic(MpiTests.Run(4, "experts", "1", "2"));
        // GroupsPerToken = 1: each token's experts are on one node (its own or the other); without the limit, often on both.
        long limitedCross = limited.Sum(t => t.CrossNode), freeCross = free.Sum(t => t.CrossNode);
        log.WriteLine($"bytes sent per step over 4 ranks (2 nodes): limited to 1 group: {limited.Sum(t => t.Bytes):N0} (cross-node {limitedCross:N0}); "
            + $"all groups: {free.Sum(t => t.Bytes):N0} (cross-node {freeCross:N0})");
        Assert.True(limitedCross < freeCross, $"limited routing sent {limitedCross} bytes across nodes, unlimited {freeCross}");
    }

    [Fact]
    public void A_rank_that_dies_between_exchanges_ends_the_job_within_seconds()
    {
        var (code, output, elapsed) = MpiTests.Run(2, "experts-die");
        Assert.NotEqual(0, code);
        Assert.Contains("exited with non-zero status", output, StringComparison.Ordinal);
        Assert.True(elapsed < TimeSpan.FromSeconds(60), $"the job took {elapsed.TotalSeconds:F0} s to end");
    }

    private static List<(long Bytes, long CrossNode)> Traffic((int Code, string Output, TimeSpan Elapsed) run)
    {
        Assert.True(run.Code == 0, run.Output);
        return TrafficLine().Matches(run.Output).Select(m => (long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture), long.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture))).ToList();
    }

    private static double Parse(string text) => double.Parse(text, CultureInfo.InvariantCulture);

    [GeneratedRegex(@"step (\d+) loss (\S+) mtp (\S+)")]
    private static partial Regex StepLine();

    [GeneratedRegex(@"rank (\d+) biases ([0-9a-f]{16}) moved (\d+)")]
    private static partial Regex BiasLine();

    [GeneratedRegex(@"rank (\d+) bytes (\d+) cross-node (\d+)")]
    private static partial Regex TrafficLine();
}
