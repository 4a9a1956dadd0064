namespace ModelCompiler.Generators
{
    public sealed partial class ModelCompilerGenerator
    {
        /// <summary>The tracking names of the pipeline's steps; incremental tests assert their run reasons.</summary>
        public static class StepNames
        {
            /// <summary>[DeepSeekModel] class → spec and diagnostics.</summary>
            public const string Parse = "Parse";

            /// <summary>The spec alone (hierarchy + model spec), without positions.</summary>
            public const string Spec = "Spec";

            /// <summary>Spec → plan.</summary>
            public const string Plan = "Plan";

            /// <summary>Plan → {Model}.Config.g.cs.</summary>
            public const string EmitConfig = "Emit.Config";

            /// <summary>Plan → {Model}.Pipeline.g.cs (with [PipelineParallel] only).</summary>
            public const string EmitPipeline = "Emit.Pipeline";

            /// <summary>Whether the compilation references ModelCompiler.Torch and ModelCompiler.Gpu.</summary>
            public const string Facts = "Facts";

            /// <summary>Plan → {Model}.Module.g.cs (with ModelCompiler.Torch only).</summary>
            public const string EmitModule = "Emit.Module";

            /// <summary>Plan → {Model}.Training.g.cs (with ModelCompiler.Torch only).</summary>
            public const string EmitTraining = "Emit.Training";

            /// <summary>Plan → {Model}.Grpo.g.cs (with [Grpo] and ModelCompiler.Torch only).</summary>
            public const string EmitGrpo = "Emit.Grpo";

            /// <summary>Plan → {Model}.Kernels.g.cs (with ModelCompiler.Gpu only).</summary>
            public const string EmitKernels = "Emit.Kernels";

            /// <summary>Component attributes on classes without [DeepSeekModel].</summary>
            public const string Orphans = "Orphans";
        }
    }
}
