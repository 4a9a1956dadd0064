using ModelCompiler.Pipeline;
using Xunit;

namespace ModelCompiler.Tests;

/// <summary>The schedule tables against the bubble formulas, and their properties for random costs.</summary>
public sealed class ScheduleTests
{
    private static readonly OpCosts Unit = new(1, 2, 1, 3);

    [Theory]
    [InlineData(PipelineSchedule.OneFOneB, 8, 20, 21.0)]     // (P−1)(F+B)
    [InlineData(PipelineSchedule.OneFOneB, 4, 32, 9.0)]
    [InlineData(PipelineSchedule.ZeroBubbleH1, 8, 20, 7.0)]  // (P−1)(F+B−2W)
    [InlineData(PipelineSchedule.ZeroBubbleH1, 4, 12, 3.0)]
    [InlineData(PipelineSchedule.DualPipe, 8, 20, 6.0)]      // (P/2−1)(F&B+B−3W)
    [InlineData(PipelineSchedule.DualPipe, 8, 40, 6.0)]
    [InlineData(PipelineSchedule.DualPipe, 4, 16, 2.0)]
    [InlineData(PipelineSchedule.DualPipeV, 8, 20, 6.0)]     // (P/2−1)(F&B+B−3W) on P/2 ranks
    [InlineData(PipelineSchedule.DualPipeV, 8, 40, 6.0)]
    [InlineData(PipelineSchedule.DualPipeV, 4, 8, 2.0)]
    public void Bubble_matches_the_formula(PipelineSchedule kind, int stages, int microBatches, double bubble)
    {
        var result = Simulator.Run(Schedules.Build(kind, stages, microBatches), Unit);
        Assert.All(result.Bubble, b => Assert.Equal(bubble, b, 9));
    }

    [Theory]
    [InlineData(PipelineSchedule.OneFOneB)]
    [InlineData(PipelineSchedule.ZeroBubbleH1)]
    [InlineData(PipelineSchedule.DualPipe)]
    [InlineData(PipelineSchedule.DualPipeV)]
    public void Random_costs_never_deadlock_and_run_every_micro_batch_once_in_dependency_order(PipelineSchedule kind)
    {
        var random = new Random();
        for (int trial = 0; trial < 60; trial++)
        {
            int stages = 2 * random.Next(1, 6), micro = kind switch
            {
                PipelineSchedule.DualPipe => 2 * random.Next(stages, 3 * stages),
                PipelineSchedule.DualPipeV => random.Next(stages, 4 * stages),
                _ => random.Next(1, 40),
            };
            double f = 0.2 + random.NextDouble(), b = 0.4 + (2 * random.NextDouble()), w = b * random.NextDouble() * 0.8;
            var costs = new OpCosts(f, b, w, Math.Max(f, b) + (random.NextDouble() * Math.Min(f, b)), random.NextDouble() * 0.5);
            var table = Schedules.Build(kind, stages, micro);
            var result = Simulator.Run(table, costs);

            // Every (phase, stage, micro-batch) runs its forward once and its backward once; weight ops match input-only backwards.
            foreach (var rankOps in table.Ops)
            {
                int zeroBubble = rankOps.Count(o => o.Kind == OpKind.BackwardInput), weights = rankOps.Count(o => o.Kind == OpKind.Weight);
                Assert.Equal(zeroBubble, weights);
            }

            // Stages are the model's (DualPipeV's V has 2 × Stages of them, phase 1 continuing phase 0), so one chain per micro-batch.
            int Model(int phase, int rank) => table.ModelStageOf(phase, table.PositionOf(phase, rank));
            int Flow(int phase) => table.Chained ? 0 : phase;
            var forwards = result.Ops.Where(o => o.Op.Kind is OpKind.Forward or OpKind.ForwardBackward)
                .Select(o => (Phase: Flow(o.Op.Phase), Stage: Model(o.Op.Phase, o.Rank), o.MicroBatch, o.End)).ToList();
            var backwards = result.Ops.Where(o => o.Op.Kind is OpKind.Backward or OpKind.BackwardInput or OpKind.ForwardBackward)
                .Select(o =>
                {
                    int phase = o.Op.Kind == OpKind.ForwardBackward ? o.Op.BackwardPhase : o.Op.Phase;
                    return (Phase: Flow(phase), Stage: Model(phase, o.Rank), MicroBatch: o.Op.Kind == OpKind.ForwardBackward ? o.BackwardMicroBatch : o.MicroBatch, o.Start, o.End);
                }).ToList();
            int expected = table.Phases * table.Stages * table.MicroBatchesPerPhase;
            Assert.Equal(expected, forwards.Select(x => (x.Phase, x.Stage, x.MicroBatch)).Distinct().Count());
            Assert.Equal(expected, forwards.Count);
            Assert.Equal(expected, backwards.Select(x => (x.Phase, x.Stage, x.MicroBatch)).Distinct().Count());
            Assert.Equal(expected, backwards.Count);
            var forwardEnd = forwards.ToDictionary(x => (x.Phase, x.Stage, x.MicroBatch), x => x.End);
            var backwardEnd = backwards.ToDictionary(x => (x.Phase, x.Stage, x.MicroBatch), x => x.End);
            foreach (var x in backwards)
            {
                Assert.True(x.Start >= forwardEnd[(x.Phase, x.Stage, x.MicroBatch)] - 1e-9, "a backward before its forward");
                if (x.Stage < table.ModelStages - 1) Assert.True(x.Start >= backwardEnd[(x.Phase, x.Stage + 1, x.MicroBatch)] - 1e-9, "a backward before the next stage's");
            }

            foreach (var x in forwards.Where(x => x.Stage > 0))
            {
                var start = result.Ops.First(o => o.Op.Kind is OpKind.Forward or OpKind.ForwardBackward && Flow(o.Op.Phase) == x.Phase && Model(o.Op.Phase, o.Rank) == x.Stage && o.MicroBatch == x.MicroBatch).Start;
                Assert.True(start >= forwardEnd[(x.Phase, x.Stage - 1, x.MicroBatch)] - 1e-9, "a forward before the previous stage's");
            }
        }
    }

    [Fact]
    public void DualPipe_hides_the_expert_all_to_all_that_1F1B_exposes()
    {
        // A = 0.5 per chunk against F&B = 3: DualPipe's overlapped chunks hide it in the steady state; 1F1B waits for every one.
        var costs = new OpCosts(1, 2, 1, 3, AllToAll: 0.5);
        double Growth(PipelineSchedule kind, int stages)
        {
            var table = Schedules.Build(kind, stages, 20);
            var without = Simulator.Run(table, costs with { AllToAll = 0 });
            var with = Simulator.Run(table, costs);
            Assert.Equal(without.Ops.Count, with.Ops.Count);
            return with.Makespan - without.Makespan;
        }

        double oneFOneB = Growth(PipelineSchedule.OneFOneB, 8), dualPipe = Growth(PipelineSchedule.DualPipe, 8);
        Assert.True(oneFOneB >= 2 * 20 * 0.5, $"1F1B exposes at least each rank's 40 chunks × A: grew by {oneFOneB}");
        Assert.True(dualPipe < 0.6 * oneFOneB, $"DualPipe grew by {dualPipe}, 1F1B by {oneFOneB}");
        Assert.True(Growth(PipelineSchedule.DualPipeV, 8) < oneFOneB);
        Assert.Equal(3, new OpCosts(1, 2, 1, 3, AllToAll: 1.5).Duration(new PipelineOp(OpKind.ForwardBackward, 0, 1))); // hidden: F&B computes longer than 2A
        Assert.Equal(4, new OpCosts(1, 2, 1, 3, AllToAll: 2).Duration(new PipelineOp(OpKind.ForwardBackward, 0, 1))); // communication-bound: 2A
    }

    [Fact]
    public void Per_peer_message_order_is_consistent_on_separate_activation_and_gradient_channels()
    {
        foreach (var kind in new[] { PipelineSchedule.OneFOneB, PipelineSchedule.ZeroBubbleH1, PipelineSchedule.DualPipe, PipelineSchedule.DualPipeV })
        {
            var table = Schedules.Build(kind, 8, 20);
            var result = Simulator.Run(table, Unit);
            // Messages a rank sends, in the order of its producing ops, must be the order in which the receiving rank consumes them.
            var sent = new Dictionary<(int From, int To, string Channel), List<(int, int, int)>>();
            var received = new Dictionary<(int From, int To, string Channel), List<(int, int, int)>>();
            void Add(Dictionary<(int, int, string), List<(int, int, int)>> map, (int, int, string) key, (int, int, int) message)
            {
                if (!map.TryGetValue(key, out var list)) map[key] = list = [];
                list.Add(message);
            }

            foreach (var o in result.Ops.OrderBy(o => o.Rank).ThenBy(o => o.Start))
            {
                if (o.Op.Kind is OpKind.Forward or OpKind.ForwardBackward)
                {
                    int stage = table.PositionOf(o.Op.Phase, o.Rank);
                    if (stage < table.Stages - 1) Add(sent, (o.Rank, table.RankOf(o.Op.Phase, stage + 1), "act"), (o.Op.Phase, stage, o.MicroBatch));
                    if (stage > 0) Add(received, (table.RankOf(o.Op.Phase, stage - 1), o.Rank, "act"), (o.Op.Phase, stage - 1, o.MicroBatch));
                }

                if (o.Op.Kind is OpKind.Backward or OpKind.BackwardInput or OpKind.ForwardBackward)
                {
                    int phase = o.Op.Kind == OpKind.ForwardBackward ? o.Op.BackwardPhase : o.Op.Phase;
                    int mb = o.Op.Kind == OpKind.ForwardBackward ? o.BackwardMicroBatch : o.MicroBatch;
                    int stage = table.PositionOf(phase, o.Rank);
                    if (stage > 0) Add(sent, (o.Rank, table.RankOf(phase, stage - 1), "grad"), (phase, stage, mb));
                    if (stage < table.Stages - 1) Add(received, (table.RankOf(phase, stage + 1), o.Rank, "grad"), (phase, stage + 1, mb));
                }
            }

            Assert.Equal(sent.Keys.Order(), received.Keys.Order());
            foreach (var (key, messages) in sent) Assert.True(messages.SequenceEqual(received[key]), $"{kind}: {key} sends and receives in different orders");
        }
    }

    [Fact]
    public void Peak_activations_follow_the_schedules()
    {
        Assert.Equal([8, 7, 6, 5, 4, 3, 2, 1], Simulator.Run(Schedules.Build(PipelineSchedule.OneFOneB, 8, 32), Unit).PeakActivations);
        Assert.Equal([8, 8, 8, 9, 9, 8, 8, 8], Simulator.Run(Schedules.Build(PipelineSchedule.DualPipe, 8, 40), Unit).PeakActivations);
    }
}
