extern alias gen;
using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Testing;
using ModelCompiler.CodeFixes;
using Xunit;
using Generator = gen::ModelCompiler.Generators.ModelCompilerGenerator;

namespace ModelCompiler.CodeFixes.Tests;

/// <summary>
/// Each fix on a declaration that draws its diagnostic from the generator: the source before (the diagnostic's span marked
/// {|MCxxxx:…|}) and after, checked by Roslyn's code-fix test framework, which also checks the fixed source draws no
/// diagnostic of that id.
/// </summary>
public sealed class CodeFixTests
{
    private const string Attributes = """
        [DeepSeekModel(vocabularySize: 1000, hiddenSize: 256, layers: 4, DenseLayers = 1, DenseIntermediateSize = 512)]
        [MultiHeadLatentAttention(heads: 4, keyValueLoraRank: 128, QueryLoraRank = 128)]
        [MixtureOfExperts(routedExperts: 16, activatedExperts: 4, expertIntermediateSize: 128, ExpertGroups = 4, GroupsPerToken = 2)]
        """;

    [Fact]
    public Task A_model_class_becomes_partial() => Verify(
        "using ModelCompiler;\n" + Attributes + "\npublic class {|MC1001:Tiny|};\n",
        "using ModelCompiler;\n" + Attributes + "\npublic partial class Tiny;\n");

    [Fact]
    public Task A_class_without_modifiers_becomes_partial() => Verify(
        "using ModelCompiler;\n" + Attributes + "\nclass {|MC1001:Tiny|} { }\n",
        "using ModelCompiler;\n" + Attributes + "\npartial class Tiny { }\n");

    [Fact]
    public Task A_record_becomes_a_partial_class() => Verify(
        "using ModelCompiler;\n" + Attributes + "\npublic partial record class {|MC1007:Tiny|};\n",
        "using ModelCompiler;\n" + Attributes + "\npublic partial class Tiny;\n");

    [Fact]
    public Task The_latent_width_rounds_up_to_a_multiple_of_64() => Verify(
        "using ModelCompiler;\n" + Attributes.Replace("keyValueLoraRank: 128", "{|MC2010:keyValueLoraRank: 100|}") + "\npublic partial class Tiny;\n",
        "using ModelCompiler;\n" + Attributes + "\npublic partial class Tiny;\n");

    [Fact]
    public Task Groups_per_token_become_the_groups() => Verify(
        "using ModelCompiler;\n" + Attributes.Replace("GroupsPerToken = 2", "{|MC2005:GroupsPerToken = 6|}") + "\npublic partial class Tiny;\n",
        "using ModelCompiler;\n" + Attributes.Replace("GroupsPerToken = 2", "GroupsPerToken = 4") + "\npublic partial class Tiny;\n");

    [Fact]
    public Task A_bias_speed_that_auxiliary_loss_balancing_ignores_is_removed() => Verify(
        "using ModelCompiler;\n" + Attributes.Replace("GroupsPerToken = 2", "GroupsPerToken = 2, Balancing = LoadBalancing.AuxiliaryLoss, ExpertBalanceLossWeight = 0.001, {|MC2013:BiasUpdateSpeed = 0.01|}") + "\npublic partial class Tiny;\n",
        "using ModelCompiler;\n" + Attributes.Replace("GroupsPerToken = 2", "GroupsPerToken = 2, Balancing = LoadBalancing.AuxiliaryLoss, ExpertBalanceLossWeight = 0.001") + "\npublic partial class Tiny;\n");

    [Fact]
    public Task A_constant_latent_width_is_replaced_by_the_rounded_literal() => Verify(
        "using ModelCompiler;\n" + Attributes.Replace("keyValueLoraRank: 128", "{|MC2010:keyValueLoraRank: Sizes.Latent|}") + "\npublic partial class Tiny;\nstatic class Sizes { public const int Latent = 65; }\n",
        "using ModelCompiler;\n" + Attributes + "\npublic partial class Tiny;\nstatic class Sizes { public const int Latent = 65; }\n");

    [Fact]
    public Task Fix_all_makes_every_model_partial() => Verify(
        "using ModelCompiler;\n" + Attributes + "\npublic class {|MC1001:Tiny|};\n" + Attributes + "\npublic class {|MC1001:Small|};\n",
        "using ModelCompiler;\n" + Attributes + "\npublic partial class Tiny;\n" + Attributes + "\npublic partial class Small;\n");

    [Fact]
    public Task Dr_grpo_takes_no_std_scaling() => Verify(
        "using ModelCompiler;\n" + Attributes + "\n[Grpo(8, LossAggregation = GrpoLossAggregation.DrGrpo, {|MC5002:RewardScaling = RewardScaling.Group|})]\npublic partial class Tiny;\n",
        "using ModelCompiler;\n" + Attributes + "\n[Grpo(8, LossAggregation = GrpoLossAggregation.DrGrpo, RewardScaling = RewardScaling.None)]\npublic partial class Tiny;\n");

    private static Task Verify(string source, string fixedSource)
    {
        var test = new Test { TestCode = source, FixedCode = fixedSource };
        return test.RunAsync();
    }

    /// <summary>The framework's code-fix test with the generator as the source of the diagnostics and no analyzer of its own.</summary>
    private sealed class Test : CSharpCodeFixTest<EmptyDiagnosticAnalyzer, ModelCompilerCodeFixes, DefaultVerifier>
    {
        /// <summary>The attributes' netstandard2.0 build, which the framework's .NET 8 reference assemblies can compile against.</summary>
        private static readonly MetadataReference s_attributes = MetadataReference.CreateFromFile(Attributes());

        public Test()
        {
            ReferenceAssemblies = ReferenceAssemblies.Net.Net80;
            TestState.AdditionalReferences.Add(s_attributes);
            FixedState.AdditionalReferences.Add(s_attributes);
            // The generator's own outputs (constants, plan) are not what these tests are about.
            TestBehaviors |= TestBehaviors.SkipGeneratedSourcesCheck;
        }

        protected override IEnumerable<Type> GetSourceGenerators() => [typeof(Generator)];

        /// <summary>
        /// The generator's diagnostics are plain records (so they cache) and come back located by file path; the IDE maps such
        /// a location to its document by that path, and so does this: each is re-anchored on the syntax tree of that path.
        /// </summary>
        protected override async Task<(Compilation compilation, ImmutableArray<Diagnostic> generatorDiagnostics)> GetProjectCompilationAsync(
            Project project, IVerifier verifier, CancellationToken cancellationToken)
        {
            var (compilation, diagnostics) = await base.GetProjectCompilationAsync(project, verifier, cancellationToken);
            var trees = compilation.SyntaxTrees.ToDictionary(tree => tree.FilePath, StringComparer.Ordinal);
            return (compilation, diagnostics.Select(Anchor).ToImmutableArray());

            Diagnostic Anchor(Diagnostic diagnostic) =>
                diagnostic.Location is { Kind: LocationKind.ExternalFile } location && trees.TryGetValue(location.GetLineSpan().Path, out var tree)
                    ? Diagnostic.Create(diagnostic.Id, diagnostic.Descriptor.Category, diagnostic.GetMessage(), diagnostic.Severity, diagnostic.DefaultSeverity,
                        diagnostic.Descriptor.IsEnabledByDefault, diagnostic.WarningLevel, diagnostic.Descriptor.Title, diagnostic.Descriptor.Description,
                        diagnostic.Descriptor.HelpLinkUri, Location.Create(tree, location.SourceSpan), diagnostic.AdditionalLocations,
                        diagnostic.Descriptor.CustomTags, diagnostic.Properties)
                    : diagnostic;
        }

        private static string Attributes()
        {
            string configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Debug" : "Release";
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                string path = Path.Combine(dir.FullName, "src", "ModelCompiler", "bin", configuration, "netstandard2.0", "ModelCompiler.dll");
                if (File.Exists(path)) return path;
            }

            throw new InvalidOperationException("the netstandard2.0 build of ModelCompiler was not found above " + AppContext.BaseDirectory);
        }
    }
}
