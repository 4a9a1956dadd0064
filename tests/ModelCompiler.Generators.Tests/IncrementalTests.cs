extern alias gen;
using System.Collections;
using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using ModelCompiler.TestUtilities;
using Xunit;
using StepNames = gen::ModelCompiler.Generators.ModelCompilerGenerator.StepNames;

namespace ModelCompiler.Generators.Tests;

/// <summary>The caching contract: what each kind of edit re-runs, and the spec's freedom from Roslyn objects.</summary>
public sealed class IncrementalTests
{
    private static readonly string Model = GeneratorRunner.Sample("TinySeek");

    [Fact]
    public void Identical_rerun_leaves_every_step_cached()
    {
        var compilation = CompilationFactory.Create(Model);
        var driver = GeneratorRunner.CreateDriver().RunGenerators(compilation).RunGenerators(compilation);
        var result = driver.GetRunResult().Results.Single();
        foreach (string step in new[] { StepNames.Spec, StepNames.Plan, StepNames.EmitConfig })
        {
            Assert.All(Reasons(result, step), r => Assert.Equal(IncrementalStepRunReason.Cached, r));
        }

        Assert.All(result.TrackedOutputSteps.SelectMany(s => s.Value).SelectMany(s => s.Outputs), o => Assert.Equal(IncrementalStepRunReason.Cached, o.Reason));
    }

    [Fact]
    public void Unrelated_file_leaves_the_outputs_cached()
    {
        var compilation = CompilationFactory.Create(Model);
        var driver = GeneratorRunner.CreateDriver().RunGenerators(compilation);
        var edited = compilation.AddSyntaxTrees(CSharpSyntaxTree.ParseText("namespace Other; public class Unrelated { public int X => 1; }", CompilationFactory.ParseOptions, path: "Other.cs"));
        var result = driver.RunGenerators(edited).GetRunResult().Results.Single();
        Assert.All(Reasons(result, StepNames.EmitConfig), r => Assert.Equal(IncrementalStepRunReason.Cached, r));
    }

    [Fact]
    public void Moving_the_declaration_keeps_the_spec_unchanged_and_the_emitters_cached()
    {
        // A latent width of 96 draws warning MC2010, so the parse result carries a position that the edit moves.
        var compilation = CompilationFactory.Create(Model.Replace("keyValueLoraRank: 64", "keyValueLoraRank: 96", StringComparison.Ordinal));
        var driver = GeneratorRunner.CreateDriver().RunGenerators(compilation);
        var tree = compilation.SyntaxTrees.Single();
        var moved = compilation.ReplaceSyntaxTree(tree, tree.WithChangedText(tree.GetText().Replace(0, 0, "// a comment that moves every position\n\n")));
        var result = driver.RunGenerators(moved).GetRunResult().Results.Single();

        Assert.Equal("MC2010", Assert.Single(result.Diagnostics).Id);
        Assert.All(Reasons(result, StepNames.Parse), r => Assert.Equal(IncrementalStepRunReason.Modified, r));
        Assert.All(Reasons(result, StepNames.Spec), r => Assert.Contains(r, new[] { IncrementalStepRunReason.Unchanged, IncrementalStepRunReason.Cached }));
        Assert.All(Reasons(result, StepNames.Plan), r => Assert.Equal(IncrementalStepRunReason.Cached, r));
        Assert.All(Reasons(result, StepNames.EmitConfig), r => Assert.Equal(IncrementalStepRunReason.Cached, r));
    }

    [Fact]
    public void Changing_a_width_regenerates_the_config()
    {
        var compilation = CompilationFactory.Create(Model);
        var driver = GeneratorRunner.CreateDriver().RunGenerators(compilation);
        var tree = compilation.SyntaxTrees.Single();
        string text = tree.GetText().ToString();
        var wider = compilation.ReplaceSyntaxTree(tree, tree.WithChangedText(Microsoft.CodeAnalysis.Text.SourceText.From(text.Replace("hiddenSize: 64", "hiddenSize: 128", StringComparison.Ordinal))));
        var result = driver.RunGenerators(wider).GetRunResult().Results.Single();

        Assert.All(Reasons(result, StepNames.Spec), r => Assert.Equal(IncrementalStepRunReason.Modified, r));
        Assert.All(Reasons(result, StepNames.EmitConfig), r => Assert.Equal(IncrementalStepRunReason.Modified, r));
        Assert.Contains("public const int HiddenSize = 128;", result.GeneratedSources.Single().SourceText.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_GRPO_setting_leaves_the_kernels_unchanged_and_a_width_regenerates_them()
    {
        var compilation = CompilationFactory.CreateWithGpu(Model);
        var driver = GeneratorRunner.CreateDriver().RunGenerators(compilation);
        var tree = compilation.SyntaxTrees.Single();
        string text = tree.GetText().ToString();
        GeneratorRunResult Edit(string from, string to) =>
            driver.RunGenerators(compilation.ReplaceSyntaxTree(tree, tree.WithChangedText(Microsoft.CodeAnalysis.Text.SourceText.From(text.Replace(from, to, StringComparison.Ordinal))))).GetRunResult().Results.Single();

        var grpo = Edit("Epsilon = 0.2", "Epsilon = 0.3");
        Assert.All(Reasons(grpo, StepNames.Plan), r => Assert.Equal(IncrementalStepRunReason.Modified, r));
        Assert.All(Reasons(grpo, StepNames.EmitKernels), r => Assert.Equal(IncrementalStepRunReason.Cached, r));

        var wider = Edit("hiddenSize: 64", "hiddenSize: 128");
        Assert.All(Reasons(wider, StepNames.EmitKernels), r => Assert.Equal(IncrementalStepRunReason.Modified, r));
        Assert.Contains("public const int Hidden = 128;", wider.GeneratedSources.Single(s => s.HintName.EndsWith(".Kernels.g.cs", StringComparison.Ordinal)).SourceText.ToString(), StringComparison.Ordinal);
    }

    /// <summary>Each output re-runs only for an edit of what it prints: every other output's emit step is Cached.</summary>
    [Theory]
    [InlineData("Epsilon = 0.2", "Epsilon = 0.3", new[] { StepNames.EmitConfig, StepNames.EmitGrpo })]
    [InlineData("LossWeight = 0.3", "LossWeight = 0.2", new[] { StepNames.EmitConfig, StepNames.EmitTraining })]
    [InlineData("hiddenSize: 64", "hiddenSize: 128", new[] { StepNames.EmitConfig, StepNames.EmitModule, StepNames.EmitKernels })]
    public void An_edit_re_runs_only_the_outputs_that_show_it(string from, string to, string[] rerun)
    {
        var compilation = CompilationFactory.CreateWithTorchAndGpu(Model);
        Assert.Contains(from, Model, StringComparison.Ordinal);
        var driver = GeneratorRunner.CreateDriver().RunGenerators(compilation);
        var tree = compilation.SyntaxTrees.Single();
        var edited = compilation.ReplaceSyntaxTree(tree, tree.WithChangedText(Microsoft.CodeAnalysis.Text.SourceText.From(tree.GetText().ToString().Replace(from, to, StringComparison.Ordinal))));
        var result = driver.RunGenerators(edited).GetRunResult().Results.Single();
        foreach (string step in new[] { StepNames.EmitConfig, StepNames.EmitModule, StepNames.EmitTraining, StepNames.EmitGrpo, StepNames.EmitKernels })
        {
            var expected = rerun.Contains(step) ? IncrementalStepRunReason.Modified : IncrementalStepRunReason.Cached;
            Assert.All(Reasons(result, step), r => Assert.True(r == expected, $"{step}: {r}, expected {expected} after '{from}' → '{to}'"));
        }
    }

    [Fact]
    public void Same_source_twice_gives_equal_specs_on_different_instances()
    {
        object first = SpecOutput(CompilationFactory.Create(Model));
        object second = SpecOutput(CompilationFactory.Create(Model));
        Assert.NotSame(first, second);
        Assert.Equal(first, second);
        Assert.Equal(first.GetHashCode(), second.GetHashCode());

        object other = SpecOutput(CompilationFactory.Create(Model.Replace("layers: 4", "layers: 5", StringComparison.Ordinal)));
        Assert.NotEqual(first, other);
    }

    [Fact]
    public void Spec_and_plan_hold_no_symbols_syntax_or_locations()
    {
        var compilation = CompilationFactory.Create(GeneratorRunner.Sample("DeepSeekV3"));
        var result = GeneratorRunner.CreateDriver().RunGenerators(compilation).GetRunResult().Results.Single();
        foreach (string step in new[] { StepNames.Spec, StepNames.Plan })
        {
            foreach (var output in result.TrackedSteps[step].SelectMany(s => s.Outputs)) AssertPlainData(output.Value, step, new HashSet<object>(ReferenceEqualityComparer.Instance));
        }
    }

    private static object SpecOutput(Compilation compilation) =>
        GeneratorRunner.CreateDriver().RunGenerators(compilation).GetRunResult().Results.Single().TrackedSteps[StepNames.Spec].Single().Outputs.Single().Value;

    private static IEnumerable<IncrementalStepRunReason> Reasons(GeneratorRunResult result, string step)
    {
        Assert.True(result.TrackedSteps.ContainsKey(step), $"step {step} did not run");
        return result.TrackedSteps[step].SelectMany(s => s.Outputs).Select(o => o.Reason);
    }

    private static void AssertPlainData(object? value, string path, HashSet<object> seen)
    {
        if (value is null || value is string || value.GetType().IsPrimitive || value.GetType().IsEnum || !seen.Add(value)) return;
        var type = value.GetType();
        Assert.False(value is ISymbol or SyntaxNode or SemanticModel or Compilation or Location or SyntaxTree, $"{path} holds a {type.Name}");
        Assert.False(type.IsArray, $"{path} holds an array ({type.Name}), which compares by reference");
        if (value is IEnumerable items)
        {
            int i = 0;
            foreach (object? item in items) AssertPlainData(item, $"{path}[{i++}]", seen);
        }

        foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
        {
            if (field.FieldType == typeof(Microsoft.CodeAnalysis.Text.TextSpan) || field.FieldType == typeof(Microsoft.CodeAnalysis.Text.LinePositionSpan)) continue;
            if (type.Name.StartsWith("EquatableArray", StringComparison.Ordinal)) continue; // its items were walked above
            AssertPlainData(field.GetValue(value), path + "." + field.Name, seen);
        }
    }
}
