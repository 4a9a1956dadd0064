extern alias gen;
using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using ModelCompiler.TestUtilities;
using Generator = gen::ModelCompiler.Generators.ModelCompilerGenerator;

namespace ModelCompiler.Generators.Tests;

/// <summary>Runs the ModelCompiler generator over sources through a CSharpGeneratorDriver with step tracking on.</summary>
internal static class GeneratorRunner
{
    public static string Version { get; } = typeof(Generator).Assembly.GetName().Version!.ToString(3);

    public static GeneratorDriver CreateDriver() => CSharpGeneratorDriver.Create(
        [new Generator().AsSourceGenerator()],
        parseOptions: CompilationFactory.ParseOptions,
        driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    /// <summary>Runs the generator; returns the run result and the output compilation.</summary>
    public static (GeneratorRunResult Result, Compilation Output, ImmutableArray<Diagnostic> Diagnostics) Run(params string[] sources) => Run(CompilationFactory.Create(sources));

    /// <summary>Runs the generator over <paramref name="compilation"/>.</summary>
    public static (GeneratorRunResult Result, Compilation Output, ImmutableArray<Diagnostic> Diagnostics) Run(Compilation compilation)
    {
        var driver = CreateDriver().RunGeneratorsAndUpdateCompilation(compilation, out var output, out var diagnostics);
        return (driver.GetRunResult().Results.Single(), output, diagnostics);
    }

    /// <summary>The generated files, hint name without ".cs" → text.</summary>
    public static Dictionary<string, string> Files(GeneratorRunResult result) =>
        result.GeneratedSources.ToDictionary(s => s.HintName[..^".cs".Length], s => s.SourceText.ToString());

    /// <summary>Errors and warnings of the compilation with the generated code in it (the generated trees must add none).</summary>
    public static IReadOnlyList<Diagnostic> CompileDiagnostics(Compilation output) =>
        output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).ToList();

    /// <summary>The source of a sample's model class, read from samples/.</summary>
    public static string Sample(string name) => File.ReadAllText(RepositoryPaths.Combine("samples", name, name + ".cs"));
}
