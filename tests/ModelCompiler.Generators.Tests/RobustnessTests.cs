using System.Globalization;
using System.Text;
using Microsoft.CodeAnalysis;
using Xunit;

namespace ModelCompiler.Generators.Tests;

/// <summary>
/// Random attribute combinations (zero, negative, huge, NaN, undefined enum values, missing attributes) never make the
/// generator throw: every one yields generated code that compiles, or diagnostics.
/// </summary>
public sealed class RobustnessTests
{
    private const int Declarations = 520;

    [Fact]
    public void Random_declarations_give_output_or_diagnostics_never_a_crash()
    {
        int seed = Environment.TickCount;
        var random = new Random(seed);
        var failures = new List<string>();
        int generated = 0, diagnosed = 0;
        for (int i = 0; i < Declarations; i++)
        {
            string source = RandomDeclaration(random);
            var (result, output, driverDiagnostics) = GeneratorRunner.Run(source);
            var all = result.Diagnostics.Concat(driverDiagnostics).ToList();
            string? problem = result.Exception is { } e ? "exception " + e
                : all.FirstOrDefault(d => d.Id is "CS8785" or "AD0001" or "MC9001") is { } bad ? bad.ToString()
                : null;
            if (problem is null && result.GeneratedSources.Length > 0)
            {
                var generatedTrees = output.SyntaxTrees.Skip(1).ToHashSet();
                var broken = output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error && generatedTrees.Contains(d.Location.SourceTree!)).ToList();
                if (broken.Count > 0) problem = "generated code does not compile: " + broken[0];
                generated++;
            }
            else if (problem is null && !all.Any(d => d.Severity >= DiagnosticSeverity.Warning) && !CompilerRejects(output))
            {
                problem = "neither output nor diagnostics";
            }
            else if (problem is null)
            {
                diagnosed++;
            }

            if (problem is not null) failures.Add($"{problem}\n{source}");
        }

        Assert.True(failures.Count == 0, $"seed {seed}: {failures.Count} failures; first:\n{failures.FirstOrDefault()}");
        Assert.True(generated > 20 && diagnosed > 20, $"seed {seed}: the mix should exercise both paths (generated {generated}, diagnosed {diagnosed})");
    }

    /// <summary>Some draws (e.g. a negative value for a property the C# compiler checks) are rejected by the compiler itself.</summary>
    private static bool CompilerRejects(Compilation output) => output.GetDiagnostics().Any(d => d.Severity == DiagnosticSeverity.Error);

    /// <summary>
    /// Half the declarations are "sane" (every value drawn from its valid range, so most generate code) and half "chaotic"
    /// (each value has a one-in-three chance of being zero, negative, huge, NaN, infinite or an undefined enum value).
    /// </summary>
    private static string RandomDeclaration(Random r)
    {
        bool chaos = r.Next(2) == 0;
        bool Wild() => chaos && r.Next(3) == 0;
        string N(long value) => value.ToString(CultureInfo.InvariantCulture);
        string Int(int sane) => !Wild() ? N(sane) : r.Next(5) switch
        {
            0 => "0",
            1 => "-1",
            2 => N(int.MaxValue),
            3 => N(int.MinValue),
            _ => N(r.Next(1, 100_000)),
        };
        string Double(double sane) => !Wild() ? sane.ToString("R", CultureInfo.InvariantCulture) : r.Next(5) switch
        {
            0 => "0.0",
            1 => "-1.0",
            2 => "double.NaN",
            3 => "double.PositiveInfinity",
            _ => "1e300",
        };
        string Enum(string type, int sane) => !Wild() ? $"({type}){sane}" : $"({type})({r.Next(-3, 50)})";
        bool Maybe(int oneIn = 2) => r.Next(oneIn) == 0;

        var text = new StringBuilder("using ModelCompiler;\nnamespace Random;\n");
        int layers = r.Next(1, 9);
        text.Append($"[DeepSeekModel({Int(r.Next(16, 2000))}, {Int(64 * r.Next(1, 5))}, {Int(layers)}, DenseLayers = {Int(r.Next(0, layers + 1))}, DenseIntermediateSize = {Int(128)}");
        if (Maybe()) text.Append($", RmsNormEpsilon = {Double(1e-6)}, RopeTheta = {Double(10000)}, TieEmbeddings = {(Maybe() ? "true" : "false")}");
        if (Maybe(3)) text.Append($", SequenceLength = {Int(r.Next(16, 8192))}");
        text.Append(")]\n");
        if (!Maybe(15))
        {
            text.Append($"[MultiHeadLatentAttention({Int(r.Next(1, 9))}, {Int(64 * r.Next(1, 3))}, QueryLoraRank = {Int(Maybe() ? 0 : 32)}, QkNopeHeadDim = {Int(16)}, QkRopeHeadDim = {Int(2 * r.Next(1, 17))}, ValueHeadDim = {Int(16)})]\n");
        }

        if (Maybe(3)) text.Append($"[YarnRopeScaling({Double(1 + (r.NextDouble() * 40))}, {Int(4096)}, BetaFast = {Double(32)}, BetaSlow = {Double(1)}, MScale = {Double(r.NextDouble())})]\n");
        if (Maybe())
        {
            int groups = 1 << r.Next(0, 3), perGroup = 1 << r.Next(1, 4), kept = r.Next(1, groups + 1);
            text.Append($"[MixtureOfExperts({Int(groups * perGroup)}, {Int(r.Next(1, (kept * perGroup) + 1))}, {Int(32)}, SharedExperts = {Int(r.Next(0, 3))}, ExpertGroups = {Int(groups)}, GroupsPerToken = {Int(kept)}, "
                + $"Scoring = {Enum("ExpertScoring", r.Next(2))}, Balancing = {Enum("LoadBalancing", 0)}, RoutedScalingFactor = {Double(2.5)}, BiasUpdateSpeed = {Double(0.001)}, SequenceBalanceLossWeight = {Double(1e-4)})]\n");
        }

        if (Maybe(3)) text.Append($"[MultiTokenPrediction({Int(r.Next(0, 3))}, LossWeight = {Double(0.3)})]\n");
        if (Maybe(3)) text.Append($"[PrecisionPolicy({Enum("NumericFormat", r.Next(4))}, ActivationTile = {Int(128)}, PromotionInterval = {Int(Maybe() ? 128 : 64)}, OptimizerMoments = {Enum("NumericFormat", r.Next(3))})]\n");
        if (Maybe(3))
        {
            int stages = 2 * r.Next(1, (layers / 2) + 1);
            if (stages > layers) stages = 1;
            int schedule = stages % 2 == 0 ? r.Next(4) : r.Next(2);
            text.Append($"[PipelineParallel({Int(stages)}, {Enum("PipelineSchedule", schedule)}, {Int(2 * stages * r.Next(1, 4))})]\n");
        }

        if (Maybe(3)) text.Append($"[Grpo({Int(r.Next(2, 17))}, Epsilon = {Double(0.2)}, EpsilonHigh = {Double(Maybe() ? 0 : 0.28)}, Beta = {Double(0.04)}, LossAggregation = {Enum("GrpoLossAggregation", r.Next(3))}, RewardScaling = {Enum("RewardScaling", r.Next(3))}, UpdatesPerRollout = {Int(r.Next(1, 4))})]\n");
        text.Append(Maybe(20) ? "public class M { }\n" : "public partial class M;\n");
        return text.ToString();
    }
}
