using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using ModelCompiler.TestUtilities;
using Xunit;

namespace ModelCompiler.Tests;

/// <summary>The kernel plan: the geometry each kernel is generated at, and the reason and argument for each left out.</summary>
public sealed class KernelPlanTests
{
    private static ModelPlan Plan(string config) =>
        ModelPlanner.PlanOrThrow(HuggingFaceConfig.Read(RepositoryPaths.Combine("tests", "fixtures", "configs", config)));

    [Fact]
    public void DeepSeek_V3_gets_every_kernel_at_its_widths()
    {
        var kernels = Plan("deepseek-v3.json").Kernels;
        Assert.All(kernels.Kernels, k => Assert.True(k.Generated, k.ToString()));
        Assert.Equal(["Hidden", "QueryLatent", "KeyValueLatent"], kernels.Norms.Select(n => n.Name));

        var hidden = kernels.Hidden; // 7168 floats = 1792 float4 loads: 512 threads × 4, the last load guarded
        Assert.Equal((4, 512, 4, true), (hidden.Vector, hidden.Group, hidden.Slots, hidden.HasTail));
        Assert.Equal(32, kernels.HiddenLanesPerTile); // a 128-wide tile is 32 lanes' float4s

        var router = kernels.Router!; // 256 experts: 8 per lane; a group of 32 on 4 lanes
        Assert.Equal((8, 4, 32), (router.PerLane, router.LanesPerGroup, router.ActiveLanes));

        var mla = kernels.Mla; // 128 heads: two 16-row m-tiles per group of 256 threads, chunks of 32 tokens of 576 values
        Assert.Equal((2, 32, 256, 576, 58_880), (mla.MTiles, mla.HeadsPerGroup, mla.Threads, mla.ScoreDims, mla.SharedBytes));
        Assert.Equal((229_912, 3, 5), (kernels.WarpGroupMla.SharedBytes, kernels.WarpGroupMla.BlocksOfGroup0, kernels.WarpGroupMla.BlocksOfGroup1));
        Assert.Equal(4, kernels.Fp8Gemm.StepsPerPromotion);
        Assert.DoesNotContain(ModelPlanner.Plan(HuggingFaceConfig.Read(RepositoryPaths.Combine("tests", "fixtures", "configs", "deepseek-v3.json"))).Issues, i => i.RuleId == "MC4001");
    }

    [Fact]
    public void A_kernel_left_out_names_why_and_the_argument()
    {
        var kernels = Plan("tiny-v3.json").Kernels; // 4 heads, hidden 256, d_c 128, d_rope 16, FP32
        var mma = kernels["MlaDecodeMma"];
        Assert.False(mma.Generated);
        Assert.Equal(new KernelLimit("4 heads are not a multiple of the 16 rows of an mma tile", "MultiHeadLatentAttention", "Heads"), mma.Limit);
        Assert.True(kernels.Generates("MlaDecode")); // the shared-memory decoder runs instead
        Assert.Equal("PrecisionPolicy.Compute", $"{kernels["Fp8Gemm"].Limit!.Attribute}.{kernels["Fp8Gemm"].Limit!.Argument}");
    }

    [Theory]
    [InlineData("tiny-v3.json", new[] { "MlaDecodeMma", "MlaDecodeWarpGroup" })]
    [InlineData("deepseek-v2-lite.json", new[] { "MlaDecodeWarpGroup" })] // 16 heads: mma.sync yes, wgmma no; FP8 kernels unused in FP32
    [InlineData("tiny-v3-fp8.json", new[] { "SwiGluQuantExpert", "MlaDecodeMma", "MlaDecodeWarpGroup" })] // experts 64 wide: not whole 128-wide tiles
    public void MC4001_is_reported_for_each_kernel_the_model_would_use_but_does_not_get(string config, string[] expected)
    {
        var result = ModelPlanner.Plan(HuggingFaceConfig.Read(RepositoryPaths.Combine("tests", "fixtures", "configs", config)));
        var reported = result.Issues.Where(i => i.RuleId == "MC4001").ToList();
        Assert.Equal(expected, reported.Select(i => i.Arguments[0]));
        Assert.All(reported, i => Assert.Equal(RuleSeverity.Info, i.Severity));
        Assert.All(reported, i => Assert.StartsWith($"{i.Arguments[0]} is not generated for this declaration: ", i.Message, StringComparison.Ordinal));
    }

    [Fact]
    public void The_kernel_plan_is_equatable_and_changes_with_a_width()
    {
        var spec = HuggingFaceConfig.Read(RepositoryPaths.Combine("tests", "fixtures", "configs", "deepseek-v2-lite.json"));
        Assert.Equal(KernelPlanner.Plan(spec), KernelPlanner.Plan(spec));
        var wider = spec with { Attention = spec.Attention with { Heads = 64 } };
        Assert.NotEqual(KernelPlanner.Plan(spec), KernelPlanner.Plan(wider));
        Assert.True(KernelPlanner.Plan(wider).Generates("MlaDecodeWarpGroup"));
    }

    [Theory]
    [InlineData(1000, "RoutedExperts")]  // 1000 experts need 32 per lane: fits; 1100 do not
    [InlineData(1100, "RoutedExperts")]
    public void The_router_is_limited_by_the_warp(int experts, string argument)
    {
        var spec = HuggingFaceConfig.Read(RepositoryPaths.Combine("tests", "fixtures", "configs", "deepseek-v2-lite.json"));
        spec = spec with { Moe = spec.Moe! with { RoutedExperts = experts, ExpertGroups = 1, GroupsPerToken = 1 } };
        var route = KernelPlanner.Plan(spec)["Route"];
        Assert.Equal(experts <= 1024, route.Generated);
        if (!route.Generated) Assert.Equal(argument, route.Limit!.Argument);
    }
}
