using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using ModelCompiler.Planning;

namespace ModelCompiler
{
    /// <summary>One line of a plan report.</summary>
    /// <param name="Section">The group it belongs to: Parameters, KV cache, Compute, Memory, Pipeline, Experts.</param>
    /// <param name="Name">What it is.</param>
    /// <param name="Value">The value, formatted.</param>
    public sealed record PlanReportRow(string Section, string Name, string Value);

    /// <summary>A plan as labelled rows, for the CLI's table, the samples' text output and anything else that prints a plan.</summary>
    public static class PlanReport
    {
        /// <summary>The rows of <paramref name="plan"/>.</summary>
        public static IReadOnlyList<PlanReportRow> Rows(ModelSpec spec, ModelPlan plan)
        {
            var rows = new List<PlanReportRow>();
            void Add(string section, string name, string value) => rows.Add(new PlanReportRow(section, name, value));
            string n(long v) => v.ToString("N0", CultureInfo.InvariantCulture);
            string b(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);
            string si(long v) => Units.Count(v);

            Add("Parameters", "total (main model)", $"{n(plan.TotalParameters)} ({si(plan.TotalParameters)})");
            Add("Parameters", "activated per token", $"{n(plan.ActivatedParameters)} ({si(plan.ActivatedParameters)})");
            if (plan.MtpParameters > 0)
            {
                Add("Parameters", "MTP modules (embedding, head shared)", $"{n(plan.MtpParameters)} ({si(plan.MtpParameters)})");
            }

            foreach (var row in plan.Components)
            {
                Add("Parameters", "  " + row.Component, row.Instances == 1 ? n(row.Total) : $"{n(row.PerInstance)} × {n(row.Instances)} = {n(row.Total)}");
            }

            Add("KV cache", "MLA latent, BF16, per token", $"{n(plan.KvCacheBytesPerToken)} B ({n(plan.LatentCacheElementsPerLayer)} values × {spec.Layers} layers)");
            Add("KV cache", "naive per-head MLA, BF16, per token", $"{n(plan.NaiveKvCacheBytesPerToken)} B ({b((double)plan.NaiveKvCacheBytesPerToken / plan.KvCacheBytesPerToken)}×)");
            Add("KV cache", "standard MHA, BF16, per token", $"{n(plan.MhaKvCacheBytesPerToken)} B ({b((double)plan.MhaKvCacheBytesPerToken / plan.KvCacheBytesPerToken)}×)");
            Add("Compute", $"forward FLOPs per token (sequence {spec.SequenceLength})", $"{Units.Flops(plan.ForwardFlopsPerToken)}");
            Add("Compute", "training FLOPs per token", $"{Units.Flops(plan.TrainingFlopsPerToken)}");
            Add("Memory", $"master weights ({spec.Precision.MasterWeights})", Units.Bytes(plan.WeightBytes));
            Add("Memory", "gradients (FP32)", Units.Bytes(plan.GradientBytes));
            Add("Memory", $"AdamW moments ({spec.Precision.OptimizerMoments})", Units.Bytes(plan.OptimizerBytes));
            Add("Memory", $"activations per token ({spec.Precision.Compute}, no recomputation)", Units.Bytes(plan.ActivationBytesPerToken));
            if (spec.Pipeline is { } p)
            {
                Add("Pipeline", "schedule", $"{p.Schedule}, {p.Stages} stages on {plan.Ranks} ranks, {p.MicroBatches} micro-batches");
                foreach (var st in plan.Stages)
                {
                    string layers = st.LayerCount == 1 ? $"layer {st.FirstLayer}" : $"layers {st.FirstLayer}–{st.FirstLayer + st.LayerCount - 1}";
                    string extras = (st.HasEmbedding ? " + embedding" : string.Empty) + (st.HasHead ? " + head" + (spec.Mtp is { Depth: > 0 } ? " + MTP" : string.Empty) : string.Empty);
                    string ranks = st.MirrorRank >= 0 ? $"ranks {st.Rank}, {st.MirrorRank}" : $"rank {st.Rank}";
                    Add("Pipeline", $"stage {st.Index} ({ranks})", $"{layers}{extras}; {si(st.Parameters)} params; {Units.Flops(st.ForwardFlopsPerToken)}/token; {Units.Bytes(st.MemoryBytes)}");
                }
            }

            if (plan.ExpertParallel is { } ep)
            {
                Add("Experts", "expert parallelism", $"{ep.Ranks} ranks in {ep.Nodes} nodes, {ep.ExpertsPerRank} routed experts per rank per layer");
                Add("Experts", "routed-expert parameters per rank", si(ep.ExpertParametersPerRank));
                Add("Experts", "a token's dispatch reaches at most", $"{ep.MaxRanksPerToken} ranks on {ep.MaxNodesPerToken} nodes");
            }

            return rows;
        }

        /// <summary>The rows of a kernel plan: each kernel (what it computes, or why it is left out), then the geometry.</summary>
        public static IReadOnlyList<PlanReportRow> KernelRows(KernelPlan kernels)
        {
            var rows = new List<PlanReportRow>();
            void Add(string section, string name, string value) => rows.Add(new PlanReportRow(section, name, value));
            foreach (var kernel in kernels.Kernels)
            {
                Add("Kernels", kernel.Name, kernel.Limit is { } limit ? $"not generated: {limit.Reason} ({limit.Attribute}.{limit.Argument})" : kernel.Summary);
            }

            foreach (var norm in kernels.Norms)
            {
                var r = norm.Shape;
                Add("Geometry", $"RmsNorm{norm.Name}", $"rows of {r.Width}: {r.Group} threads × {r.Slots} loads of {r.Vector} floats{(r.HasTail ? ", last load guarded" : string.Empty)}");
            }

            if (kernels.Router is { } router)
            {
                Add("Geometry", "Route", $"one warp per token: {router.PerLane} experts per lane on {router.ActiveLanes} lanes" + (router.Groups > 1 ? $", a group on {router.LanesPerGroup} lanes" : string.Empty));
            }

            var mla = kernels.Mla;
            Add("Geometry", "MlaDecodeMma", $"{mla.HeadsPerGroup} heads × {MlaShape.Chunk}-token chunks per group of {mla.Threads} threads, {mla.SharedBytes:N0} B shared");
            var wg = kernels.WarpGroupMla;
            Add("Geometry", "MlaDecodeWarpGroup", $"{WarpGroupMlaShape.HeadsPerGroup} heads × {WarpGroupMlaShape.Chunk}-token chunks per group of {WarpGroupMlaShape.Threads} threads, {wg.SharedBytes:N0} B shared");
            Add("Geometry", "Fp8Gemm", $"{Fp8GemmShape.Tile} × {Fp8GemmShape.Tile} output tiles, {Fp8GemmShape.Stages} stages of {Fp8GemmShape.StageBytes:N0} B, {Fp8GemmShape.SharedBytes:N0} B shared, {Fp8GemmShape.Threads} threads");
            return rows;
        }

        /// <summary>The rows as aligned plain text, one section after another.</summary>
        public static string Format(ModelSpec spec, ModelPlan plan)
        {
            var rows = Rows(spec, plan);
            int width = rows.Max(r => r.Name.Length) + 2;
            var text = new StringBuilder();
            foreach (var section in rows.GroupBy(r => r.Section))
            {
                text.Append(section.Key).Append('\n');
                foreach (var row in section) text.Append("  ").Append(row.Name.PadRight(width)).Append(row.Value).Append('\n');
            }

            return text.ToString();
        }
    }
}
