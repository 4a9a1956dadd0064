using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace ModelCompiler.TestUtilities;

/// <summary>Builds C# compilations that reference the running framework and the ModelCompiler library, as a user's project does.</summary>
public static class CompilationFactory
{
    private static readonly Lazy<ImmutableArray<MetadataReference>> s_references = new(() =>
    {
        string[] platform = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        return platform
            .Where(p => Path.GetFileName(p).StartsWith("System.", StringComparison.Ordinal) || Path.GetFileName(p) is "mscorlib.dll" or "netstandard.dll")
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))
            .Append(MetadataReference.CreateFromFile(typeof(DeepSeekModelAttribute).Assembly.Location))
            .ToImmutableArray();
    });

    private static readonly Lazy<ImmutableArray<MetadataReference>> s_torchReferences = new(() => s_references.Value
        .Add(MetadataReference.CreateFromFile(typeof(ModelCompiler.Torch.DeepSeekCausalLM).Assembly.Location))
        .Add(MetadataReference.CreateFromFile(typeof(TorchSharp.torch).Assembly.Location)));

    /// <summary>The parse options of the tests: the latest language version.</summary>
    public static CSharpParseOptions ParseOptions { get; } = new(LanguageVersion.Preview);

    /// <summary>A compilation of <paramref name="sources"/> (file names Model0.cs, Model1.cs, …).</summary>
    public static CSharpCompilation Create(params string[] sources) => Create(sources, withTorch: false);

    /// <summary>A compilation of <paramref name="sources"/> that also references ModelCompiler.Torch and TorchSharp.</summary>
    public static CSharpCompilation CreateWithTorch(params string[] sources) => Create(sources, withTorch: true);

    private static CSharpCompilation Create(string[] sources, bool withTorch) =>
        CSharpCompilation.Create(
            "TestModels",
            sources.Select((s, i) => CSharpSyntaxTree.ParseText(s, ParseOptions, path: $"Model{i}.cs")),
            withTorch ? s_torchReferences.Value : s_references.Value,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
}
