using System.Reflection;
using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using ModelCompiler.TestUtilities;
using Xunit;
using Xunit.Abstractions;

namespace ModelCompiler.Tests;

/// <summary>Every issue the validator reports formats into its rule's message, whatever the values.</summary>
public sealed class SpecValidatorTests(ITestOutputHelper log)
{
    private static readonly int[] s_integers = [int.MinValue, -1, 0, 1, 2, 3, 7, 32, 63, 64, 96, 100, 128, 129, 4096, 4097, 1 << 24, (1 << 24) + 1, int.MaxValue];
    private static readonly double[] s_reals = [double.NaN, double.NegativeInfinity, double.PositiveInfinity, -1, 0, double.Epsilon, 1e-6, 0.5, 1, 2.5, 40, 1e12, 1e300];

    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    [InlineData(-32)]
    public void An_invalid_FP8_weight_block_is_MC3002_with_its_message(int block)
    {
        var spec = HuggingFaceConfig.Read(RepositoryPaths.Combine("tests", "fixtures", "configs", "deepseek-v3.json"));
        var issue = Assert.Single(SpecValidator.Validate(spec with { Precision = spec.Precision with { WeightBlock = block } }));
        Assert.Equal("MC3002", issue.RuleId);
        Assert.StartsWith($"PrecisionPolicy.WeightBlock = {block} is not valid: it must be a positive multiple of 32", issue.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Thousands of specs, each a fixture with a few numbers replaced by boundary values (fresh seed each run, printed): the
    /// planner either plans or reports issues whose messages format, and never throws.
    /// </summary>
    [Fact]
    public void Random_specs_plan_or_report_formatted_issues()
    {
        int seed = Environment.TickCount;
        log.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var fixtures = new[] { "deepseek-v3.json", "deepseek-v2.json", "deepseek-v2-lite.json", "tiny-v3.json", "tiny-v3-fp8.json" }
            .Select(name => HuggingFaceConfig.Read(RepositoryPaths.Combine("tests", "fixtures", "configs", name)))
            .Select(spec => spec with
            {
                Pipeline = new PipelineSpec(4, PipelineSchedule.DualPipe, 8),
                ExpertParallel = new ExpertParallelSpec(2, 1),
                Grpo = new GrpoSpec(8, 0.2, 0.28, 0.001, GrpoLossAggregation.Dapo, RewardScaling.Group, 1),
                Mtp = spec.Mtp ?? new MtpSpec(1, 0.3),
            })
            .ToArray();
        int issues = 0, planned = 0;
        for (int i = 0; i < 3000; i++)
        {
            var spec = fixtures[random.Next(fixtures.Length)];
            for (int change = random.Next(1, 4); change > 0; change--) spec = (ModelSpec)Mutate(spec, random);
            var result = ModelPlanner.Plan(spec);
            foreach (var issue in result.Issues)
            {
                Assert.False(string.IsNullOrWhiteSpace(issue.Message), $"{issue.RuleId} has an empty message for {spec}");
                issues++;
            }

            if (result.Plan is not null) planned++;
        }

        log.WriteLine($"{planned} planned, {issues} issues formatted");
        Assert.True(planned > 0 && issues > 0, "the mutations never made a valid or never an invalid spec");
    }

    /// <summary>A copy of record <paramref name="value"/> with one number, anywhere in its tree, replaced by a boundary value.</summary>
    private static object Mutate(object value, Random random)
    {
        var properties = value.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && (p.PropertyType == typeof(int) || p.PropertyType == typeof(double) || p.PropertyType.Namespace == "ModelCompiler.Planning" && p.GetValue(value) is not null))
            .ToArray();
        var property = properties[random.Next(properties.Length)];
        var copy = value.GetType().GetMethod("<Clone>$")!.Invoke(value, null)!;
        object replacement = property.PropertyType == typeof(int) ? s_integers[random.Next(s_integers.Length)]
            : property.PropertyType == typeof(double) ? s_reals[random.Next(s_reals.Length)]
            : Mutate(property.GetValue(value)!, random);
        property.SetValue(copy, replacement);
        return copy;
    }
}
