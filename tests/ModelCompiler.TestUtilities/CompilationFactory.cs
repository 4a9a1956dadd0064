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

    private static readonly ImmutableArray<MetadataReference> s_torch =
    [
        MetadataReference.CreateFromFile(typeof(ModelCompiler.Torch.DeepSeekCausalLM).Assembly.Location),
        MetadataReference.CreateFromFile(typeof(TorchSharp.torch).Assembly.Location),
    ];

    private static readonly ImmutableArray<MetadataReference> s_gpu =
    [
        MetadataReference.CreateFromFile(typeof(ModelCompiler.Gpu.GpuDevice).Assembly.Location),
        MetadataReference.CreateFromFile(typeof(ILGPU.Context).Assembly.Location),
    ];

    /// <summary>The parse options of the tests: the latest language version.</summary>
    public static CSharpParseOptions ParseOptions { get; } = new(LanguageVersion.Preview);

    /// <summary>A compilation of <paramref name="sources"/> (file names Model0.cs, Model1.cs, …).</summary>
    public static CSharpCompilation Create(params string[] sources) => Create(sources, torch: false, gpu: false);

    /// <summary>A compilation of <paramref name="sources"/> that also references ModelCompiler.Torch and TorchSharp.</summary>
    public static CSharpCompilation CreateWithTorch(params string[] sources) => Create(sources, torch: true, gpu: false);

    /// <summary>A compilation of <paramref name="sources"/> that also references ModelCompiler.Gpu and ILGPU (so kernels are emitted).</summary>
    public static CSharpCompilation CreateWithGpu(params string[] sources) => Create(sources, torch: false, gpu: true);

    /// <summary>A compilation that references both runtimes, as TinySeek's project does.</summary>
    public static CSharpCompilation CreateWithTorchAndGpu(params string[] sources) => Create(sources, torch: true, gpu: true);

    private static CSharpCompilation Create(string[] sources, bool torch, bool gpu) =>
        CSharpCompilation.Create(
            "TestModels",
            sources.Select((s, i) => CSharpSyntaxTree.ParseText(s, ParseOptions, path: $"Model{i}.cs")),
            s_references.Value.AddRange(torch ? s_torch : []).AddRange(gpu ? s_gpu : []),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true));
}
