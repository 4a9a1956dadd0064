using ModelCompiler.TestUtilities;
using Xunit;

namespace ModelCompiler.Generators.Tests;

/// <summary>Every generated file of both samples, against checked-in snapshots; and the output compiles cleanly.</summary>
public sealed class SnapshotTests
{
    [Theory]
    [InlineData("DeepSeekV3")]
    [InlineData("TinySeek")]
    public void Sample_output_matches_snapshots(string sample)
    {
        var (result, output, _) = GeneratorRunner.Run(GeneratorRunner.Sample(sample));

        Assert.Null(result.Exception);
        Assert.Empty(result.Diagnostics);
        Assert.Empty(GeneratorRunner.CompileDiagnostics(output));
        Snapshot.Verify("tests/ModelCompiler.Generators.Tests", nameof(SnapshotTests), $"{nameof(Sample_output_matches_snapshots)}_sample={sample}",
            GeneratorRunner.Files(result), GeneratorRunner.Version);
    }
}
