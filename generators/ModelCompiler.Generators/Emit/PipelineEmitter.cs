using System;
using System.Linq;
using System.Text;
using ModelCompiler.Generators.Model;
using ModelCompiler.Pipeline;
using ModelCompiler.Planning;
using static ModelCompiler.Generators.Emit.Literals;

namespace ModelCompiler.Generators.Emit
{
    /// <summary>
    /// Emits <c>{Model}.Pipeline.g.cs</c> for a class with [PipelineParallel]: the stage partition the plan chose, each rank's
    /// static op table, and, in the remarks, the timeline drawn as text with unit costs (F = 1, B = 2, W = 1, F&amp;B = 3).
    /// </summary>
    internal static class PipelineEmitter
    {
        private static readonly OpCosts UnitCosts = new(1, 2, 1, 3);

        public static GeneratedFile? Emit(ModelGeneration g)
        {
            if (g.Spec.Pipeline is not { } pipeline) return null;
            var table = Schedules.Build(pipeline.Schedule, pipeline.Stages, pipeline.MicroBatches);
            var simulation = Simulator.Run(table, UnitCosts);
            var h = g.Hierarchy;
            string text = Headers.ModelClassFile(h, w =>
            {
                w.WriteLine($"/// <summary>The pipeline of {Xml.Escape(h.Name)}: {pipeline.Stages} stages, {pipeline.Schedule}, {pipeline.MicroBatches} micro-batches on {table.Ranks} ranks.</summary>");
                w.WriteLine("/// <remarks>");
                w.WriteLine("/// <para>Stages (the partition balances forward FLOPs; the first holds the embedding, the last the head and MTP):</para>");
                w.WriteLine("/// <code>");
                w.WriteDocLines(Xml.Escape(Explain.Stages(g)));
                w.WriteLine("/// </code>");
                if (g.Plan.ExpertParallel is { } ep)
                {
                    w.WriteLine($"/// <para>Experts: each stage's routed experts are spread over an expert group of {ep.Ranks} ranks ({ep.ExpertsPerRank} per rank), so the job is a grid of {Int(table.Ranks)} pipeline ranks × {ep.Ranks} = {Int(table.Ranks * ep.Ranks)} ranks; a group's members run the same ops on their share of each micro-batch and exchange tokens by all-to-all inside each MoE layer.</para>");
                }

                w.WriteLine($"/// <para>Timeline with F = 1, B = 2, W = 1, F&amp;B = 3 (F forward, B backward, b input-gradient backward, W weight gradient, X overlapped F&amp;B, . idle): makespan {Display(simulation.Makespan)}, bubble per rank {Display(simulation.Bubble.Max())}, peak activations {string.Join(", ", simulation.PeakActivations)}.</para>");
                w.WriteLine("/// <code>");
                w.WriteDocLines(Xml.Escape(Timeline(table, simulation)));
                w.WriteLine("/// </code>");
                w.WriteLine("/// </remarks>");
                w.WriteLine(Headers.GeneratedCode);
                using (w.WriteBlock("public static class Pipeline"))
                {
                    w.WriteSummary("Ranks the pipeline runs on.");
                    w.WriteLine($"public const int Ranks = {Int(table.Ranks)};");
                    w.WriteLine();
                    if (g.Plan.ExpertParallel is { } grid)
                    {
                        w.WriteSummary("Ranks of the whole job: the pipeline's ranks × the expert group of each stage.");
                        w.WriteLine($"public const int TotalRanks = {Int(table.Ranks * grid.Ranks)};");
                        w.WriteLine();
                    }

                    w.WriteSummary("Each rank's ops in order: F{phase} forward, B{phase} backward, b{phase} input-gradient backward, W weight gradient, F{p}B{q} overlapped.");
                    w.WriteLine("public static global::System.Collections.Generic.IReadOnlyList<string> RankOps { get; } = new[]");
                    w.WriteLine("{");
                    foreach (var ops in table.Ops) w.WriteLine($"    \"{string.Join(" ", ops)}\",");
                    w.WriteLine("};");
                    w.WriteLine();
                    w.WriteSummary("The same table as data, for the executor and the simulator.");
                    w.WriteLine($"public static global::ModelCompiler.Pipeline.ScheduleTable Table => global::ModelCompiler.Pipeline.Schedules.Build({Enum(pipeline.Schedule)}, {Int(pipeline.Stages)}, {Int(pipeline.MicroBatches)});");
                }
            });
            return new GeneratedFile(h.FilenameHint + ".Pipeline.g.cs", text);
        }

        /// <summary>One row per rank, one character per unit of time.</summary>
        private static string Timeline(ScheduleTable table, SimulationResult simulation)
        {
            int length = (int)Math.Ceiling(simulation.Makespan);
            var text = new StringBuilder();
            for (int rank = 0; rank < table.Ranks; rank++)
            {
                var row = Enumerable.Repeat('.', length).ToArray();
                foreach (var op in simulation.Ops.Where(o => o.Rank == rank))
                {
                    char mark = op.Op.Kind switch { OpKind.Forward => 'F', OpKind.Backward => 'B', OpKind.BackwardInput => 'b', OpKind.Weight => 'W', _ => 'X' };
                    for (int t = (int)op.Start; t < (int)Math.Ceiling(op.End) && t < length; t++) row[t] = mark;
                }

                text.Append("rank ").Append(rank.ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(2)).Append(' ').Append(row).Append('\n');
            }

            return text.ToString().TrimEnd('\n');
        }
    }
}
