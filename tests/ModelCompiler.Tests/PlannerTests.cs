using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using ModelCompiler.TestUtilities;
using Xunit;

namespace ModelCompiler.Tests;

/// <summary>The planner reproduces DeepSeek's published numbers (deepseek-reference §1.6, §8.2, §10, §11).</summary>
public sealed class PlannerTests
{
    private static ModelSpec Config(string name) => HuggingFaceConfig.Read(RepositoryPaths.Combine("tests", "fixtures", "configs", name));

    [Fact]
    public void DeepSeek_V3_matches_the_published_counts()
    {
        var plan = ModelPlanner.PlanOrThrow(Config("deepseek-v3.json"));

        Assert.InRange(plan.TotalParameters, 671.0e9 * 0.999, 671.0e9 * 1.001);
        Assert.InRange(plan.ActivatedParameters, 37.5e9 * 0.99, 37.5e9 * 1.01);
        Assert.InRange(plan.ActivatedParameters, 37.54e9, 37.56e9); // 37.55B counted from shapes
        Assert.Equal(70_272, plan.KvCacheBytesPerToken);
        Assert.Equal(4_997_120, plan.NaiveKvCacheBytesPerToken);
        Assert.Equal(3_997_696, plan.MhaKvCacheBytesPerToken);
        Assert.Equal(44_040_192, plan.Components.Single(c => c.Component == "Routed expert").PerInstance);
        Assert.Equal(187_107_328, plan.Components.Single(c => c.Component == "MLA attention (per layer)").PerInstance);
        Assert.InRange(plan.MtpParameters, 11.6e9, 11.62e9); // 11.61B: 187.1M MLA + 11.32B MoE + 102.8M eh_proj + norms
        Assert.InRange(plan.TrainingFlopsPerToken, 249e9, 252e9); // ISCA'25: 250 GFLOP per token at 4K
    }

    [Theory]
    [InlineData("deepseek-v2.json", 235.7e9, 21.4e9, 69_120)]
    [InlineData("deepseek-v2-lite.json", 15.7e9, 2.66e9, 31_104)]
    public void DeepSeek_V2_family_matches_the_published_counts(string config, double total, double activated, long kvBytes)
    {
        var plan = ModelPlanner.PlanOrThrow(Config(config));
        Assert.InRange(plan.TotalParameters, total * 0.999, total * 1.001);
        Assert.InRange(plan.ActivatedParameters, activated * 0.99, activated * 1.01);
        Assert.Equal(kvBytes, plan.KvCacheBytesPerToken);
        Assert.Equal(0, plan.MtpParameters);
    }

    [Fact]
    public void Softmax_scale_and_yarn_range_match_the_reference()
    {
        var spec = Config("deepseek-v3.json");
        Assert.Equal(0.1352338, RopeMath.SoftmaxScale(spec), 7);
        Assert.Equal((10, 23), RopeMath.CorrectionRange(64, 10000, spec.Yarn!));
        Assert.Equal(0.1147214, RopeMath.SoftmaxScale(Config("deepseek-v2-lite.json")), 7);
        Assert.Equal(1 / Math.Sqrt(48), RopeMath.SoftmaxScale(Config("tiny-v3.json")), 12); // plain RoPE: no mscale
    }

    [Theory]
    [InlineData(PipelineSchedule.OneFOneB, 8, 16)]
    [InlineData(PipelineSchedule.ZeroBubbleH1, 5, 10)]
    [InlineData(PipelineSchedule.DualPipe, 16, 32)]
    [InlineData(PipelineSchedule.DualPipeV, 8, 16)]
    public void Stages_cover_every_layer_once_and_balance_the_cost(PipelineSchedule schedule, int stages, int microBatches)
    {
        var spec = Config("deepseek-v3.json") with { Pipeline = new PipelineSpec(stages, schedule, microBatches) };
        var plan = ModelPlanner.PlanOrThrow(spec);

        Assert.Equal(stages, plan.Stages.Count);
        int next = 0;
        foreach (var stage in plan.Stages)
        {
            Assert.Equal(next, stage.FirstLayer);
            Assert.True(stage.LayerCount >= 1);
            next += stage.LayerCount;
        }

        Assert.Equal(spec.Layers, next);
        Assert.True(plan.Stages[0].HasEmbedding && plan.Stages[^1].HasHead);
        Assert.Equal(plan.TotalParameters + plan.MtpParameters, plan.Stages.Sum(s => s.Parameters));

        // No stage costs more than the ideal share plus one of the most expensive layers (the partition is contiguous).
        double total = plan.Stages.Sum(s => (double)s.ForwardFlopsPerToken);
        double maxLayer = plan.Stages.Max(s => (double)s.ForwardFlopsPerToken / s.LayerCount) * 2;
        Assert.All(plan.Stages, s => Assert.True(s.ForwardFlopsPerToken <= (total / stages) + maxLayer, $"stage {s.Index} is unbalanced"));

        if (schedule == PipelineSchedule.DualPipe) Assert.All(plan.Stages, s => Assert.Equal(stages - 1 - s.Index, s.MirrorRank));
        Assert.Equal(schedule == PipelineSchedule.DualPipeV ? stages / 2 : stages, plan.Ranks);
    }

    [Fact]
    public void Invalid_specs_give_issues_not_exceptions()
    {
        var spec = Config("deepseek-v3.json");
        var result = ModelPlanner.Plan(spec with { Moe = spec.Moe! with { ActivatedExperts = 300 } });
        Assert.Null(result.Plan);
        var issue = Assert.Single(result.Issues, i => i.Severity == RuleSeverity.Error);
        Assert.Equal("MC2003", issue.RuleId);
        Assert.Equal("ActivatedExperts", issue.Argument);
        Assert.Contains("300", issue.Message, StringComparison.Ordinal);
        var error = Assert.Throws<ArgumentException>(() => ModelPlanner.PlanOrThrow(spec with { Layers = 0 }));
        Assert.Contains("DeepSeekModel.Layers = 0", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(100, "so 64 or 128 would run faster")]
    [InlineData(16, "so 64 would run faster")] // below one tile: one suggestion, not "64 or 64"
    public void A_ragged_latent_width_suggests_the_nearest_multiples_of_64(int rank, string suggestion)
    {
        var spec = Config("deepseek-v3.json");
        var issue = Assert.Single(ModelPlanner.Plan(spec with { Attention = spec.Attention with { KeyValueLoraRank = rank } }).Issues, i => i.RuleId == "MC2010");
        Assert.EndsWith(suggestion, issue.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Attribute_defaults_are_the_spec_defaults()
    {
        var model = new DeepSeekModelAttribute(1, 1, 1);
        Assert.Equal(SpecDefaults.RmsNormEpsilon, model.RmsNormEpsilon);
        Assert.Equal(SpecDefaults.SequenceLength, model.SequenceLength);
        var mla = new MultiHeadLatentAttentionAttribute(1, 1);
        Assert.Equal((SpecDefaults.QueryLoraRank, SpecDefaults.QkNopeHeadDim, SpecDefaults.QkRopeHeadDim, SpecDefaults.ValueHeadDim), (mla.QueryLoraRank, mla.QkNopeHeadDim, mla.QkRopeHeadDim, mla.ValueHeadDim));
        var moe = new MixtureOfExpertsAttribute(8, 2, 16);
        Assert.Equal((1, 1, SpecDefaults.RoutedScalingFactor, true, LoadBalancing.AuxiliaryLossFree, SpecDefaults.BiasUpdateSpeed), (moe.ExpertGroups, moe.GroupsPerToken, moe.RoutedScalingFactor, moe.NormalizeTopK, moe.Balancing, moe.BiasUpdateSpeed));
        Assert.Equal(SpecDefaults.MtpLossWeight, new MultiTokenPredictionAttribute(1).LossWeight);
        var precision = new PrecisionPolicyAttribute(NumericFormat.Fp32);
        Assert.Equal(PrecisionSpec.Fp32, new PrecisionSpec(precision.Compute, precision.ActivationTile, precision.WeightBlock, precision.PromotionInterval, precision.MasterWeights, precision.OptimizerMoments));
        var grpo = new GrpoAttribute(8);
        Assert.Equal((SpecDefaults.GrpoEpsilon, 0.0, SpecDefaults.GrpoBeta, SpecDefaults.GrpoUpdatesPerRollout), (grpo.Epsilon, grpo.EpsilonHigh, grpo.Beta, grpo.UpdatesPerRollout));
        Assert.Equal(SpecDefaults.RanksPerNode, new ExpertParallelAttribute(64).RanksPerNode);
    }

    [Fact]
    public void DeepSeek_V3_experts_over_64_ranks_in_8_nodes()
    {
        var spec = Config("deepseek-v3.json") with { ExpertParallel = new ExpertParallelSpec(64, 8) };
        var ep = ModelPlanner.PlanOrThrow(spec).ExpertParallel!;
        Assert.Equal((64, 8, 4), (ep.Ranks, ep.Nodes, ep.ExpertsPerRank));
        Assert.Equal(59L * 256 * 3 * 7168 * 2048 / 64, ep.ExpertParametersPerRank); // 58 MoE layers and the MTP module's
        Assert.Equal((8, 4), (ep.MaxRanksPerToken, ep.MaxNodesPerToken)); // K = 8 experts on at most GroupsPerToken = 4 nodes
        Assert.Empty(ModelPlanner.Plan(spec).Issues);
    }

    [Theory]
    [InlineData(48, 8, "MC2014", "Ranks")]        // 256 experts over 48 ranks
    [InlineData(32, 8, "MC2015", "ExpertGroups")] // 4 nodes, 8 groups: the limit does not bound the nodes
    [InlineData(64, 12, "MC1006", "RanksPerNode")] // 64 ranks do not fill nodes of 12
    public void Expert_parallel_layouts_that_do_not_fit_are_named(int ranks, int perNode, string rule, string argument)
    {
        var spec = Config("deepseek-v3.json") with { ExpertParallel = new ExpertParallelSpec(ranks, perNode) };
        var issue = Assert.Single(ModelPlanner.Plan(spec).Issues);
        Assert.Equal((rule, argument), (issue.RuleId, issue.Argument));
        var dense = Assert.Single(ModelPlanner.Plan(spec with { Moe = null, DenseLayers = spec.Layers }).Issues);
        Assert.Equal("MC2016", dense.RuleId);
    }
}
