using ModelCompiler.Planning;

namespace ModelCompiler.Generators.Model
{
    /// <summary>
    /// What each emitter reads of a planned model, and nothing more: the generator selects these before emitting, so that an
    /// edit leaves every output it does not show cached (a GRPO setting does not re-run the kernel emitter). Each is a
    /// <see cref="ModelGeneration"/> whose spec keeps only the settings the output prints, and whose plan only the numbers it
    /// prints; the snapshot tests check that every output is the same as from the whole model.
    /// </summary>
    internal static class Projections
    {
        /// <summary>The kernels: the network's widths, its routing and precision policy, and the kernel plan.</summary>
        public static ModelGeneration Kernels(ModelGeneration g) => g with
        {
            Spec = Network(g.Spec) with { Precision = g.Spec.Precision },
            Plan = new ModelPlan { Kernels = g.Plan.Kernels },
        };

        /// <summary>The TorchSharp module: the network (with its MTP modules) and its cache size.</summary>
        public static ModelGeneration Module(ModelGeneration g) => g with
        {
            Spec = Network(g.Spec),
            Plan = new ModelPlan { LatentCacheElementsPerLayer = g.Plan.LatentCacheElementsPerLayer, KvCacheBytesPerToken = g.Plan.KvCacheBytesPerToken },
        };

        /// <summary>The pre-training recipe: MTP, balancing and the precision policy.</summary>
        public static ModelGeneration Training(ModelGeneration g) => g with
        {
            Spec = new ModelSpec
            {
                Mtp = g.Spec.Mtp,
                Moe = g.Spec.Moe is { } m
                    ? new MoeSpec(0, 0, 0, 0, default, m.ExpertGroups, m.GroupsPerToken, 0, false, m.Balancing, m.BiasUpdateSpeed, m.SequenceBalanceLossWeight,
                        m.ExpertBalanceLossWeight, m.DeviceBalanceLossWeight, m.CommunicationBalanceLossWeight)
                    : null,
                Precision = g.Spec.Precision,
            },
            Plan = new ModelPlan(),
        };

        /// <summary>The GRPO objective: the [Grpo] settings alone.</summary>
        public static ModelGeneration Grpo(ModelGeneration g) => g with { Spec = new ModelSpec { Grpo = g.Spec.Grpo }, Plan = new ModelPlan() };

        /// <summary>The pipeline: its settings, the stage partition (which depends on every layer's cost) and the expert groups inside the stages.</summary>
        public static ModelGeneration Pipeline(ModelGeneration g) => g with
        {
            Spec = new ModelSpec { Pipeline = g.Spec.Pipeline, Layers = g.Spec.Layers },
            Plan = new ModelPlan { Stages = g.Plan.Stages, Ranks = g.Plan.Ranks, ExpertParallel = g.Plan.ExpertParallel },
        };

        /// <summary>The network a checkpoint holds: training-only settings (balancing speeds and losses, λ, precision, pipeline, expert parallelism, GRPO, sequence length) cleared.</summary>
        private static ModelSpec Network(ModelSpec s) => s with
        {
            SequenceLength = 0,
            Mtp = s.Mtp is null ? null : s.Mtp with { LossWeight = 0 },
            Precision = PrecisionSpec.Fp32,
            Pipeline = null,
            ExpertParallel = null,
            Grpo = null,
            Moe = s.Moe is null ? null : s.Moe with { BiasUpdateSpeed = 0, SequenceBalanceLossWeight = 0, ExpertBalanceLossWeight = 0, DeviceBalanceLossWeight = 0, CommunicationBalanceLossWeight = 0 },
        };
    }
}
