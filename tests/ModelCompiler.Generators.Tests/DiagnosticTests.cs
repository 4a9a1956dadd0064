using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;
using ModelCompiler.TestUtilities;
using ModelCompiler.Planning;
using Xunit;

namespace ModelCompiler.Generators.Tests;

/// <summary>
/// One case per diagnostic id: the source marks the expected span with [| |], and the generator must report exactly that id
/// there (and no other error). Each rule in <see cref="DiagnosticRule.All"/> must have a case (checked below).
/// </summary>
public sealed class DiagnosticTests
{
    private const string Valid = """
        [DeepSeekModel(vocabularySize: 1000, hiddenSize: 256, layers: 4, DenseLayers = 1, DenseIntermediateSize = 512)]
        [MultiHeadLatentAttention(heads: 4, keyValueLoraRank: 128, QueryLoraRank = 128, QkNopeHeadDim = 32, QkRopeHeadDim = 16, ValueHeadDim = 32)]
        [MixtureOfExperts(routedExperts: 16, activatedExperts: 4, expertIntermediateSize: 128, SharedExperts = 1, ExpertGroups = 4, GroupsPerToken = 2)]
        """;

    public static TheoryData<string, string> Cases() => new()
    {
        { "MC1001", "[DeepSeekModel(1000, 256, 2, DenseIntermediateSize = 64)][MultiHeadLatentAttention(4, 128)] public class [|M|] { }" },
        { "MC1002", "public class [|Outer|] { [DeepSeekModel(1000, 256, 2, DenseIntermediateSize = 64)][MultiHeadLatentAttention(4, 128)] public partial class M { } }" },
        { "MC1003", "[[|MixtureOfExperts(8, 2, 64)|]] public partial class NotAModel { }" },
        { "MC1004", "[DeepSeekModel(1000, 256, 2, DenseIntermediateSize = 64)][MultiHeadLatentAttention(4, 128)] public partial class [|M|]<T> { }" },
        { "MC1005", "[DeepSeekModel(1000, 256, 2, DenseIntermediateSize = 64)] public partial class [|M|] { }" },
        { "MC1006", Valid.Replace("hiddenSize: 256", "[|hiddenSize: 0|]") },
        { "MC1007", Valid + "\npublic partial record class [|M|];" },
        { "MC2001", Valid.Replace("DenseLayers = 1", "[|DenseLayers = 5|]") },
        { "MC2002", Valid.Replace(", DenseIntermediateSize = 512)]", ")]").Replace("[DeepSeekModel(", "[[|DeepSeekModel(").Replace("DenseLayers = 1)]", "DenseLayers = 1)|]]") },
        { "MC2003", Valid.Replace("activatedExperts: 4", "[|activatedExperts: 17|]").Replace("ExpertGroups = 4, GroupsPerToken = 2", "ExpertGroups = 1") },
        { "MC2004", Valid.Replace("ExpertGroups = 4", "[|ExpertGroups = 3|]") },
        { "MC2005", Valid.Replace("GroupsPerToken = 2", "[|GroupsPerToken = 5|]") },
        { "MC2006", Valid.Replace("activatedExperts: 4", "activatedExperts: 9").Replace("GroupsPerToken = 2", "[|GroupsPerToken = 2|]") },
        { "MC2007", Valid.Replace("QkRopeHeadDim = 16", "[|QkRopeHeadDim = 15|]") },
        { "MC2008", Valid + "\n[YarnRopeScaling(40, 4096, [|BetaFast = 1|], BetaSlow = 32)]" },
        { "MC2009", "[[|DeepSeekModel(16777216, 16777216, 65536, DenseIntermediateSize = 16777216)|]][MultiHeadLatentAttention(16777216, 16777216)]\n" },
        { "MC2010", Valid.Replace("keyValueLoraRank: 128", "[|keyValueLoraRank: 100|]") },
        { "MC2011", Valid.Replace("DenseLayers = 1", "DenseLayers = 4").Replace("MixtureOfExperts(routedExperts: 16", "MixtureOfExperts([|routedExperts: 16|]") },
        { "MC2012", Valid.Replace("GroupsPerToken = 2", "GroupsPerToken = 2, [|Balancing = LoadBalancing.AuxiliaryLoss|]") },
        { "MC2013", Valid.Replace("GroupsPerToken = 2", "GroupsPerToken = 2, Balancing = LoadBalancing.AuxiliaryLoss, ExpertBalanceLossWeight = 0.001, [|BiasUpdateSpeed = 0.01|]") },
        { "MC2014", Valid + "\n[ExpertParallel([|ranks: 6|])]" },
        { "MC2015", Valid.Replace("ExpertGroups = 4", "[|ExpertGroups = 4|]") + "\n[ExpertParallel(ranks: 16, RanksPerNode = 8)]" },
        { "MC2016", "[DeepSeekModel(1000, 256, 2, DenseIntermediateSize = 64)][MultiHeadLatentAttention(4, 128)][ExpertParallel([|4|])] public partial class M { }" },
        { "MC3001", Valid.Replace("expertIntermediateSize: 128", "[|expertIntermediateSize: 96|]") + "\n[PrecisionPolicy(NumericFormat.Fp8E4M3)]" },
        { "MC3002", Valid + "\n[PrecisionPolicy(NumericFormat.Fp8E4M3, [|PromotionInterval = 96|])]" },
        { "MC3002", Valid + "\n[PrecisionPolicy(NumericFormat.Fp8E4M3, [|WeightBlock = 0|])]" },
        { "MC4001", Valid.Replace("heads: 4", "[|heads: 16|]").Replace("QkRopeHeadDim = 16", "QkRopeHeadDim = 64") }, // no MlaDecodeWarpGroup
        { "MC5001", Valid + "\n[Grpo(8, Epsilon = 0.3, [|EpsilonHigh = 0.2|])]" },
        { "MC5002", Valid + "\n[Grpo(8, LossAggregation = GrpoLossAggregation.DrGrpo, [|RewardScaling = RewardScaling.Group|])]" },
        { "MC6001", Valid + "\n[PipelineParallel([|stages: 8|], schedule: PipelineSchedule.OneFOneB, microBatches: 16)]" },
        { "MC6002", Valid + "\n[PipelineParallel([|stages: 3|], schedule: PipelineSchedule.DualPipe, microBatches: 16)]" },
        { "MC6003", Valid + "\n[PipelineParallel(stages: 4, schedule: PipelineSchedule.DualPipe, [|microBatches: 6|])]" },
        { "MC6004", Valid + "\n[PipelineParallel(stages: 4, schedule: PipelineSchedule.OneFOneB, [|microBatches: 2|])]" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Reports_the_rule_on_the_marked_span(string id, string markup)
    {
        string source = "using ModelCompiler;\nnamespace Test;\n" + (markup.Contains("class ") ? markup : markup + "\npublic partial class M;");
        var (text, span) = ParseMarkup(source);
        // MC4001 (the kernel plan) is reported only where kernels are generated: in a project that references ModelCompiler.Gpu.
        var (result, _, _) = GeneratorRunner.Run(id == "MC4001" ? CompilationFactory.CreateWithGpu(text) : CompilationFactory.Create(text));

        Assert.Null(result.Exception);
        var reported = result.Diagnostics.Where(d => d.Id == id).ToList();
        Assert.True(reported.Count == 1, $"expected one {id}, got: {string.Join("; ", result.Diagnostics)}");
        Assert.Equal(span, reported[0].Location.SourceSpan);
        var expected = DiagnosticRule.Find(id).Severity switch
        {
            RuleSeverity.Error => DiagnosticSeverity.Error,
            RuleSeverity.Warning => DiagnosticSeverity.Warning,
            _ => DiagnosticSeverity.Info,
        };
        Assert.Equal(expected, reported[0].Severity);
        Assert.DoesNotContain(result.Diagnostics, d => d.Id != id && d.Severity == DiagnosticSeverity.Error);
        Assert.EndsWith($"docs/diagnostics/{id}.md", reported[0].Descriptor.HelpLinkUri, StringComparison.Ordinal);
        string message = reported[0].GetMessage(System.Globalization.CultureInfo.InvariantCulture);
        Assert.DoesNotMatch(@"\{\d+\}", message); // every placeholder filled
    }

    [Fact]
    public void Every_rule_but_the_internal_error_has_a_case()
    {
        var covered = Cases().Select(row => (string)row[0]).ToHashSet();
        var missing = DiagnosticRule.All.Select(r => r.Id).Where(id => id != "MC9001" && !covered.Contains(id)).ToList();
        Assert.Empty(missing);
    }

    [Fact]
    public void A_valid_model_has_no_diagnostics_and_errors_suppress_generation()
    {
        var (ok, _, _) = GeneratorRunner.Run("using ModelCompiler;\nnamespace Test;\n" + Valid + "\npublic partial class M;");
        Assert.Empty(ok.Diagnostics);
        Assert.Single(ok.GeneratedSources);

        var (bad, _, _) = GeneratorRunner.Run("using ModelCompiler;\nnamespace Test;\n" + Valid.Replace("activatedExperts: 4", "activatedExperts: 17") + "\npublic partial class M;");
        Assert.Contains(bad.Diagnostics, d => d.Id == "MC2003");
        Assert.Empty(bad.GeneratedSources);
    }

    [Fact]
    public void Messages_name_the_argument_its_value_and_what_is_valid()
    {
        var (result, _, _) = GeneratorRunner.Run("using ModelCompiler;\nnamespace Test;\n" + Valid.Replace("ExpertGroups = 4", "ExpertGroups = 3") + "\npublic partial class M;");
        string message = result.Diagnostics.Single(d => d.Id == "MC2004").GetMessage(System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal("MixtureOfExperts.ExpertGroups = 3 does not divide RoutedExperts = 16; groups must be equal, for example 2", message);
    }

    private static (string Text, TextSpan Span) ParseMarkup(string markup)
    {
        int start = markup.IndexOf("[|", StringComparison.Ordinal);
        int end = markup.IndexOf("|]", StringComparison.Ordinal);
        Assert.True(start >= 0 && end > start, "markup needs one [| |] span");
        string text = markup.Remove(end, 2).Remove(start, 2);
        return (text, TextSpan.FromBounds(start, end - 2));
    }
}
