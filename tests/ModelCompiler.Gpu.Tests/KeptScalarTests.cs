using ModelCompiler.TestUtilities;
using Xunit;

namespace ModelCompiler.Gpu.Tests;

/// <summary>
/// The TorchSharp references the kernels are checked against make no temporary Scalar that a collection could free mid-call
/// (<see cref="TemporaryScalarAudit"/>): ILGPU's CPU accelerator runs kernels on threads of its own while they compute.
/// </summary>
public sealed class KeptScalarTests
{
    [Fact]
    public void The_kernel_tests_pass_TorchSharp_no_temporary_scalar()
    {
        string project = RepositoryPaths.Combine("tests", "ModelCompiler.Gpu.Tests");
        var sources = TemporaryScalarAudit.SourcesIn(project)
            .Where(f => !f.StartsWith(Path.Combine(project, "Snapshots"), StringComparison.Ordinal))
            .Concat(Directory.EnumerateFiles(Path.Combine(project, "obj", "Generated"), "*.cs", SearchOption.AllDirectories))
            .Append(RepositoryPaths.Combine("samples", "DeepSeekV3", "DeepSeekV3.cs"))
            .Append(RepositoryPaths.Combine("samples", "TinySeek", "TinySeek.cs"));
        var findings = TemporaryScalarAudit.Find(
            sources,
            ["System", "System.Collections.Generic", "System.IO", "System.Linq", "System.Net.Http", "System.Threading", "System.Threading.Tasks"],
            "ModelCompiler.Gpu.Tests");
        Assert.True(findings.Count == 0, $"{findings.Count} temporary Scalars:\n" + string.Join("\n", findings));
    }
}
