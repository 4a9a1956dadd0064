using System.Reflection;
using System.Runtime.Loader;
using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using ModelCompiler.Scaffolding;
using ModelCompiler.TestUtilities;
using Xunit;

namespace ModelCompiler.Generators.Tests;

/// <summary>config.json → scaffold → build with the generator → the generated plan equals the plan of the config.json.</summary>
public sealed class ScaffoldRoundTripTests
{
    [Theory]
    [InlineData("deepseek-v3.json")]
    [InlineData("deepseek-v2.json")]
    [InlineData("deepseek-v2-lite.json")]
    [InlineData("tiny-v3.json")]
    [InlineData("tiny-v3-fp8.json")]
    public void Scaffolded_class_builds_to_the_plan_of_its_config(string config)
    {
        var spec = HuggingFaceConfig.Read(RepositoryPaths.Combine("tests", "fixtures", "configs", config));
        var expected = ModelPlanner.PlanOrThrow(spec);
        string source = ClassScaffolder.Write(spec, "Scaffolded", "RoundTrip", config);

        var (result, output, _) = GeneratorRunner.Run(source);
        Assert.Null(result.Exception);
        Assert.DoesNotContain(result.Diagnostics, d => d.Severity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error);
        using var stream = new MemoryStream();
        var emit = output.Emit(stream);
        Assert.True(emit.Success, string.Join("\n", emit.Diagnostics));

        var context = new AssemblyLoadContext("scaffold", isCollectible: true);
        try
        {
            stream.Position = 0;
            var type = context.LoadFromStream(stream).GetType("RoundTrip.Scaffolded", throwOnError: true)!;
            var plan = type.GetNestedType("Plan")!;
            long Const(string name) => Convert.ToInt64(plan.GetField(name)!.GetRawConstantValue());
            Assert.Equal(expected.TotalParameters, Const("TotalParameters"));
            Assert.Equal(expected.ActivatedParameters, Const("ActivatedParameters"));
            Assert.Equal(expected.MtpParameters, Const("MtpParameters"));
            Assert.Equal(expected.KvCacheBytesPerToken, Const("KvCacheBytesPerToken"));
            Assert.Equal(expected.MhaKvCacheBytesPerToken, Const("MhaKvCacheBytesPerToken"));
            Assert.Equal(expected.TrainingFlopsPerToken, Const("TrainingFlopsPerToken"));

            // The generated Spec is the very spec the config.json gave (ModelCompiler.dll is shared with the load context).
            var generated = (ModelSpec)type.GetProperty("Spec", BindingFlags.Public | BindingFlags.Static)!.GetValue(null)!;
            Assert.Equal(spec, generated);
        }
        finally
        {
            context.Unload();
        }
    }
}
