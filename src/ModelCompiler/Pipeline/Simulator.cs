using System;
using System.Collections.Generic;
using System.Linq;

namespace ModelCompiler.Pipeline
{
    /// <summary>Per-op costs. B is a chunk's full backward, W its weight-gradient part (so an input-only backward costs B − W).</summary>
    /// <param name="Forward">F.</param>
    /// <param name="Backward">B.</param>
    /// <param name="Weight">W.</param>
    /// <param name="ForwardBackward">F&amp;B, an overlapped forward and backward; F + B when null.</param>
    /// <param name="Communication">Latency added to every cross-rank dependency.</param>
    /// <param name="AllToAll">
    /// A: the expert-parallel dispatch and combine of one chunk (forward, or the backward of its inputs). A lone chunk waits
    /// for it (F + A, B + A, B − W + A; W has none); an overlapped F&amp;B runs one chunk's all-to-all while the other computes,
    /// as DualPipe does, so it takes max(F&amp;B, 2A).
    /// </param>
    public sealed record OpCosts(double Forward, double Backward, double Weight, double? ForwardBackward = null, double Communication = 0, double AllToAll = 0)
    {
        /// <summary>The computation of <paramref name="op"/> (what the bubble does not count as idle).</summary>
        public double Of(PipelineOp op) => op.Kind switch
        {
            OpKind.Forward => Forward,
            OpKind.Backward => Backward,
            OpKind.BackwardInput => Backward - Weight,
            OpKind.Weight => Weight,
            _ => ForwardBackward ?? (Forward + Backward),
        };

        /// <summary>How long <paramref name="op"/> holds its rank: its computation plus the all-to-all it cannot hide.</summary>
        public double Duration(PipelineOp op) => op.Kind switch
        {
            OpKind.Weight => Weight,
            OpKind.ForwardBackward => Math.Max(Of(op), 2 * AllToAll),
            _ => Of(op) + AllToAll,
        };

        /// <summary>The all-to-all time <paramref name="op"/> carries, hidden or not: A per chunk that has one.</summary>
        public double AllToAllOf(PipelineOp op) => op.Kind switch
        {
            OpKind.Weight => 0,
            OpKind.ForwardBackward => 2 * AllToAll,
            _ => AllToAll,
        };
    }

    /// <summary>One op as simulated.</summary>
    /// <param name="Rank">The rank.</param>
    /// <param name="Op">The op.</param>
    /// <param name="MicroBatch">The forward's micro-batch (or the backward's, for a lone backward); −1 for W.</param>
    /// <param name="BackwardMicroBatch">For F&amp;B, the backward's micro-batch; −1 otherwise.</param>
    /// <param name="Start">Start time.</param>
    /// <param name="End">End time.</param>
    public sealed record SimulatedOp(int Rank, PipelineOp Op, int MicroBatch, int BackwardMicroBatch, double Start, double End);

    /// <summary>The outcome of a simulation.</summary>
    /// <param name="Makespan">When the last op ends.</param>
    /// <param name="Bubble">Per rank, the time it is not computing within the makespan (the DualPipe README's bubble).</param>
    /// <param name="PeakActivations">Per rank, the most micro-batch activations held at once (forwards done, backwards not).</param>
    /// <param name="Ops">Every op with its times, by rank and order.</param>
    public sealed record SimulationResult(double Makespan, IReadOnlyList<double> Bubble, IReadOnlyList<int> PeakActivations, IReadOnlyList<SimulatedOp> Ops);

    /// <summary>
    /// Discrete-event simulation of a <see cref="ScheduleTable"/> (distributed-notes §3.5): each rank runs its ops in order; an
    /// op starts when its rank is free and its inputs exist — a forward needs the previous stage's forward of its micro-batch,
    /// a backward the next stage's backward (or, on the last stage, its own forward), a weight op a queued weight gradient.
    /// A pass without progress is a deadlock, reported with the rank and op.
    /// </summary>
    public static class Simulator
    {
        /// <summary>Simulates <paramref name="table"/> with <paramref name="costs"/>.</summary>
        /// <exception cref="InvalidOperationException">The table deadlocks or runs a weight op with nothing queued.</exception>
        public static SimulationResult Run(ScheduleTable table, OpCosts costs)
        {
            int ranks = table.Ranks;
            var forwardDone = new Dictionary<(int Phase, int Position, int MicroBatch), double>();
            var backwardDone = new Dictionary<(int Phase, int Position, int MicroBatch), double>();
            var next = new int[ranks];
            var free = new double[ranks];
            var busy = new double[ranks];
            var forwards = new int[ranks, table.Phases];
            var backwards = new int[ranks, table.Phases];
            var weightQueue = new int[ranks];
            var live = new int[ranks];
            var peak = new int[ranks];
            var simulated = new List<SimulatedOp>();

            bool progress = true;
            while (progress)
            {
                progress = false;
                for (int rank = 0; rank < ranks; rank++)
                {
                    while (next[rank] < table.Ops[rank].Count)
                    {
                        var op = table.Ops[rank][next[rank]];
                        double ready = free[rank];
                        int forwardMb = -1, backwardMb = -1;
                        bool doesForward = op.Kind is OpKind.Forward or OpKind.ForwardBackward;
                        bool doesBackward = op.Kind is OpKind.Backward or OpKind.BackwardInput or OpKind.ForwardBackward;
                        int backwardPhase = op.Kind == OpKind.ForwardBackward ? op.BackwardPhase : op.Phase;
                        if (doesForward)
                        {
                            forwardMb = forwards[rank, op.Phase];
                            if (forwardMb >= table.MicroBatchesPerPhase) throw new InvalidOperationException($"rank {rank}, op {next[rank]} ({op}): more forwards of phase {op.Phase} than micro-batches");
                            int position = table.PositionOf(op.Phase, rank);
                            if (position > 0)
                            {
                                if (!forwardDone.TryGetValue((op.Phase, position - 1, forwardMb), out double input)) break;
                                ready = Math.Max(ready, input + costs.Communication);
                            }
                            else if (table.Chained && op.Phase == 1)
                            {
                                // DualPipeV's turn: phase 1 starts from phase 0's last stage of the same micro-batch, on this rank.
                                if (!forwardDone.TryGetValue((0, table.Stages - 1, forwardMb), out double turn)) break;
                                ready = Math.Max(ready, turn);
                            }
                        }

                        if (doesBackward)
                        {
                            backwardMb = backwards[rank, backwardPhase];
                            int position = table.PositionOf(backwardPhase, rank);
                            if (position < table.Stages - 1)
                            {
                                if (!backwardDone.TryGetValue((backwardPhase, position + 1, backwardMb), out double gradient)) break;
                                ready = Math.Max(ready, gradient + costs.Communication);
                            }
                            else if (table.Chained && backwardPhase == 0)
                            {
                                // The turn of the V, backwards: phase 0's last stage takes its gradient from phase 1's first.
                                if (!backwardDone.TryGetValue((1, 0, backwardMb), out double turn)) break;
                                ready = Math.Max(ready, turn);
                            }
                            else
                            {
                                if (!forwardDone.TryGetValue((backwardPhase, position, backwardMb), out double own)) break;
                                ready = Math.Max(ready, own);
                            }
                        }

                        if (op.Kind == OpKind.Weight && weightQueue[rank] == 0)
                        {
                            throw new InvalidOperationException($"rank {rank}, op {next[rank]}: a weight op with no queued weight gradient");
                        }

                        double end = ready + costs.Duration(op);
                        if (doesBackward)
                        {
                            // In an overlapped F&B the backward frees its micro-batch as the forward stores the new one.
                            backwardDone[(backwardPhase, table.PositionOf(backwardPhase, rank), backwardMb)] = end;
                            backwards[rank, backwardPhase]++;
                            live[rank]--;
                        }

                        if (doesForward)
                        {
                            forwardDone[(op.Phase, table.PositionOf(op.Phase, rank), forwardMb)] = end;
                            forwards[rank, op.Phase]++;
                            peak[rank] = Math.Max(peak[rank], ++live[rank]);
                        }

                        if (op.Kind == OpKind.BackwardInput) weightQueue[rank]++;
                        if (op.Kind == OpKind.Weight) weightQueue[rank]--;
                        simulated.Add(new SimulatedOp(rank, op, op.Kind == OpKind.Backward || op.Kind == OpKind.BackwardInput ? backwardMb : forwardMb,
                            op.Kind == OpKind.ForwardBackward ? backwardMb : -1, ready, end));
                        busy[rank] += costs.Of(op);
                        free[rank] = end;
                        next[rank]++;
                        progress = true;
                    }
                }
            }

            for (int rank = 0; rank < ranks; rank++)
            {
                if (next[rank] < table.Ops[rank].Count) throw new InvalidOperationException($"deadlock: rank {rank} stuck at op {next[rank]} ({table.Ops[rank][next[rank]]})");
            }

            double makespan = free.Max();
            return new SimulationResult(makespan, busy.Select(b => makespan - b).ToList(), peak, simulated.OrderBy(o => o.Rank).ThenBy(o => o.Start).ToList());
        }
    }
}
