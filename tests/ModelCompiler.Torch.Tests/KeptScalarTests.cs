using ModelCompiler.TestUtilities;
using Xunit;

namespace ModelCompiler.Torch.Tests;

/// <summary>
/// No code that runs models hands TorchSharp a Scalar that a collection could free mid-call (<see cref="TemporaryScalarAudit"/>):
/// the race made one clean-clone test run in a few fail with "Expected false to be true … Scalar.h:140".
/// </summary>
public sealed class KeptScalarTests
{
    [Fact]
    public void The_runtime_and_its_tests_pass_TorchSharp_no_temporary_scalar()
    {
        var findings = TemporaryScalarAudit.Find(
            Sources("src", "ModelCompiler.Torch").Concat(Sources("tests", "ModelCompiler.Torch.Tests")),
            [.. ImplicitUsings, "ComponentNameAttribute = TorchSharp.Utils.ComponentNameAttribute"],
            "ModelCompiler.Torch", "ModelCompiler.Torch.Tests");
        Assert.True(findings.Count == 0, $"{findings.Count} temporary Scalars:\n" + string.Join("\n", findings));
    }

    [Fact]
    public void The_audit_finds_each_kind_of_temporary()
    {
        string file = Path.Combine(Path.GetTempPath(), $"scalars-{Guid.NewGuid():N}.cs");
        File.WriteAllText(file, """
            using TorchSharp;
            using static TorchSharp.torch;
            static class Sample
            {
                static readonly Scalar Two = 2.0;
                static Tensor Cases(Tensor a, Tensor b)
                {
                    var sum = a + 1.0;                 // operator with a number
                    var alpha = a.add(b);              // default alpha
                    var squared = a.square();          // pow(2) inside
                    var scaled = a.clamp(-3.0, 3.0);   // implicit conversions at the call
                    var below = a < 0.5;               // an operator's operand converted
                    Scalar local = 4.0; var fromLocal = a.mul(local); // a local the JIT may drop before the call returns
                    using Scalar kept = 5.0;
                    var fine = a.mul(kept).mul(Two).add(b, Two).mul(b);
                    return sum.add(alpha, Two).add(squared, Two).add(scaled, Two).add(fromLocal, Two).add(below, Two) + fine; // Tensor + Tensor: alpha 1
                }
            }
            """);
        try
        {
            var findings = TemporaryScalarAudit.Find([file], ["System"], "ModelCompiler.Torch.Tests");
            var lines = findings.Select(f => int.Parse(f.Split(':')[1])).Distinct().Order().ToList();
            // 8: a + 1.0, 9: add(b), 10: square(), 11: clamp(−3, 3), 12: a < 0.5, 13: mul(local), 16: a + b; not 14 or 15 (kept).
            Assert.Equal([8, 9, 10, 11, 12, 13, 16], lines);
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static readonly string[] ImplicitUsings = ["System", "System.Collections.Generic", "System.IO", "System.Linq", "System.Net.Http", "System.Threading", "System.Threading.Tasks"];

    private static IEnumerable<string> Sources(params string[] folder) => TemporaryScalarAudit.SourcesIn(RepositoryPaths.Combine(folder));
}
