using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using ModelCompiler.Generators.Diagnostics;
using ModelCompiler.Generators.Emit;
using ModelCompiler.Generators.Model;
using ModelCompiler.Generators.Parsing;
using ModelCompiler.Planning;

namespace ModelCompiler.Generators
{
    /// <summary>
    /// The ModelCompiler incremental generator: [DeepSeekModel] class → equatable spec → plan → one file per artefact.
    /// </summary>
    [Generator(LanguageNames.CSharp)]
    public sealed partial class ModelCompilerGenerator : IIncrementalGenerator
    {
        private const string TorchModuleMetadataName = "ModelCompiler.Torch.DeepSeekCausalLM";
        private const string GpuDeviceMetadataName = "ModelCompiler.Gpu.GpuDevice";

        /// <inheritdoc/>
        public void Initialize(IncrementalGeneratorInitializationContext context)
        {
            // Caching contract. ForAttributeWithMetadataName runs the predicate for each attributed node of an edited file and
            // the transform for each attributed class of the compilation: both stay minimal. The transform (Parsing/) is the
            // only code that touches symbols and syntax; it returns a ParseResult of plain records that reference nothing from
            // the compilation. Diagnostics carry positions and change on almost every edit, so they travel on their own output;
            // the spec is selected without them, so an edit that moves the declaration leaves Plan and Emit.* cached.
            var parsed = context.SyntaxProvider
                .ForAttributeWithMetadataName(
                    ModelParser.ModelAttributeMetadataName,
                    static (node, _) => node is ClassDeclarationSyntax or RecordDeclarationSyntax,
                    static (ctx, ct) => ModelParser.Parse(ctx, ct))
                .WithTrackingName(StepNames.Parse);

            var specs = parsed
                .Select(static (result, _) => result.Target)
                .Where(static target => target is not null)
                .Select(static (target, _) => target!)
                .WithTrackingName(StepNames.Spec);

            var plans = specs
                .Select(static (target, _) => ModelGeneration.Create(target))
                .Where(static generation => generation is not null)
                .Select(static (generation, _) => generation!)
                .WithTrackingName(StepNames.Plan);

            var config = plans
                .Select(static (generation, _) => ConfigEmitter.Emit(generation))
                .WithTrackingName(StepNames.EmitConfig);

            context.RegisterSourceOutput(config, static (spc, file) => spc.AddSource(file.HintName, file.Text));

            var pipeline = plans
                .Select(static (generation, _) => Projections.Pipeline(generation))
                .Select(static (generation, _) => PipelineEmitter.Emit(generation))
                .Where(static file => file is not null)
                .WithTrackingName(StepNames.EmitPipeline);
            context.RegisterSourceOutput(pipeline, static (spc, file) => spc.AddSource(file!.HintName, file.Text));

            // The TorchSharp module is emitted only where the project references ModelCompiler.Torch, the kernels only where it
            // references ModelCompiler.Gpu. The compilation is projected to those two booleans first, so that edits elsewhere do
            // not invalidate anything.
            var facts = context.CompilationProvider
                .Select(static (compilation, _) => new ReferenceFacts(
                    compilation.GetTypeByMetadataName(TorchModuleMetadataName) is not null,
                    compilation.GetTypeByMetadataName(GpuDeviceMetadataName) is not null))
                .WithTrackingName(StepNames.Facts);
            var hasTorch = facts.Select(static (f, _) => f.Torch);
            var module = plans
                .Select(static (generation, _) => Projections.Module(generation))
                .Combine(hasTorch)
                .Where(static pair => pair.Right)
                .Select(static (pair, _) => ModuleEmitter.Emit(pair.Left))
                .WithTrackingName(StepNames.EmitModule);
            context.RegisterSourceOutput(module, static (spc, file) => spc.AddSource(file.HintName, file.Text));

            var training = plans
                .Select(static (generation, _) => Projections.Training(generation))
                .Combine(hasTorch)
                .Where(static pair => pair.Right)
                .Select(static (pair, _) => TrainingEmitter.Emit(pair.Left))
                .WithTrackingName(StepNames.EmitTraining);
            context.RegisterSourceOutput(training, static (spc, file) => spc.AddSource(file.HintName, file.Text));

            var grpo = plans
                .Select(static (generation, _) => Projections.Grpo(generation))
                .Combine(hasTorch)
                .Where(static pair => pair.Right)
                .Select(static (pair, _) => GrpoEmitter.Emit(pair.Left))
                .Where(static file => file is not null)
                .WithTrackingName(StepNames.EmitGrpo);
            context.RegisterSourceOutput(grpo, static (spc, file) => spc.AddSource(file!.HintName, file.Text));

            var kernels = plans
                .Select(static (generation, _) => Projections.Kernels(generation))
                .Combine(facts.Select(static (f, _) => f.Gpu))
                .Where(static pair => pair.Right)
                .Select(static (pair, _) => KernelEmitter.Emit(pair.Left))
                .WithTrackingName(StepNames.EmitKernels);
            context.RegisterSourceOutput(kernels, static (spc, file) => spc.AddSource(file.HintName, file.Text));

            // The kernel plan's MC4001 (a kernel left out) matters only where kernels are generated: with ModelCompiler.Gpu.
            var diagnostics = parsed
                .Select(static (result, _) => result.Diagnostics)
                .Combine(facts.Select(static (f, _) => f.Gpu));
            context.RegisterSourceOutput(diagnostics, static (spc, pair) =>
            {
                foreach (var diagnostic in pair.Left)
                {
                    if (pair.Right || diagnostic.RuleId != DiagnosticRule.KernelNotGenerated.Id) spc.ReportDiagnostic(diagnostic.ToDiagnostic());
                }
            });

            // A component attribute ([MixtureOfExperts], …) on a class without [DeepSeekModel] does nothing: say so.
            foreach (string metadataName in ModelParser.ComponentAttributeMetadataNames)
            {
                var orphans = context.SyntaxProvider
                    .ForAttributeWithMetadataName(
                        metadataName,
                        static (node, _) => node is TypeDeclarationSyntax,
                        static (ctx, ct) => ModelParser.FindOrphan(ctx, ct))
                    .Where(static info => info is not null)
                    .WithTrackingName(StepNames.Orphans);
                context.RegisterSourceOutput(orphans, static (spc, info) => spc.ReportDiagnostic(info!.ToDiagnostic()));
            }
        }
    }

    /// <summary>What the compilation references, as far as emission cares.</summary>
    /// <param name="Torch">ModelCompiler.Torch: emit Module.g.cs and Training.g.cs.</param>
    /// <param name="Gpu">ModelCompiler.Gpu: emit Kernels.g.cs.</param>
    internal readonly record struct ReferenceFacts(bool Torch, bool Gpu);
}
