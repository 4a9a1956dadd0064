using ModelCompiler.TestUtilities;
using Xunit;

namespace ModelCompiler.Generators.Tests;

/// <summary>Every generated file of both samples, against checked-in snapshots; and the output compiles cleanly.</summary>
public sealed class SnapshotTests
{
    /// <summary>
    /// The samples compiled as their projects are: both reference ModelCompiler.Gpu (and get kernels at their shapes), TinySeek
    /// also ModelCompiler.Torch (and gets a Module and a Training class).
    /// </summary>
    [Theory]
    [InlineData("DeepSeekV3")]
    [InlineData("TinySeek")]
    public void Sample_output_matches_snapshots(string sample)
    {
        string source = GeneratorRunner.Sample(sample);
        var (result, output, _) = GeneratorRunner.Run(sample == "TinySeek" ? CompilationFactory.CreateWithTorchAndGpu(source) : CompilationFactory.CreateWithGpu(source));

        Assert.Null(result.Exception);
        // TinySeek's 4 heads are too few for the tensor-core MLA decoders: the kernel plan says so (MC4001, info), nothing else.
        string[] expected = sample == "TinySeek"
            ? ["MC4001: MlaDecodeMma is not generated for this declaration: 4 heads are not a multiple of the 16 rows of an mma tile",
               "MC4001: MlaDecodeWarpGroup is not generated for this declaration: 4 heads are not a multiple of the 64 rows of a warp-group MMA"]
            : [];
        Assert.Equal(expected, result.Diagnostics.Select(d => $"{d.Id}: {d.GetMessage(System.Globalization.CultureInfo.InvariantCulture)}"));
        Assert.Empty(GeneratorRunner.CompileDiagnostics(output));
        Snapshot.Verify("tests/ModelCompiler.Generators.Tests", nameof(SnapshotTests), $"{nameof(Sample_output_matches_snapshots)}_sample={sample}",
            GeneratorRunner.Files(result), GeneratorRunner.Version);
    }

    [Fact]
    public void Readme_example_builds_and_gives_the_numbers_it_shows()
    {
        string readme = File.ReadAllText(RepositoryPaths.Combine("README.md"));
        int start = readme.IndexOf("```csharp\n", StringComparison.Ordinal) + "```csharp\n".Length;
        string example = readme[start..readme.IndexOf("```", start, StringComparison.Ordinal)];

        var (result, output, _) = GeneratorRunner.Run(example);
        Assert.Empty(result.Diagnostics);
        Assert.Empty(GeneratorRunner.CompileDiagnostics(output));
        string generated = result.GeneratedSources.Single(s => s.HintName.EndsWith(".Config.g.cs", StringComparison.Ordinal)).SourceText.ToString();
        foreach (string line in new[] { "TotalParameters = 671026419200;", "ActivatedParameters = 37552297472;", "KvCacheBytesPerToken = 70272;" })
        {
            Assert.Contains(line, generated, StringComparison.Ordinal);
        }

        Assert.Contains("Plan.TotalParameters        = 671,026,419,200", example, StringComparison.Ordinal);
    }
}
