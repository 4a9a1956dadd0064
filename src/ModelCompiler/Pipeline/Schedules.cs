using System;
using System.Collections.Generic;

namespace ModelCompiler.Pipeline
{
    /// <summary>What a pipeline op does.</summary>
    public enum OpKind
    {
        /// <summary>Forward of one micro-batch through the rank's stage of a phase.</summary>
        Forward,

        /// <summary>Full backward (input and weight gradients) of one micro-batch.</summary>
        Backward,

        /// <summary>Input-gradient-only backward (zero bubble): its weight gradient is queued for a later <see cref="Weight"/>.</summary>
        BackwardInput,

        /// <summary>Runs the oldest queued weight-gradient computation.</summary>
        Weight,

        /// <summary>A forward of one phase overlapped with a full backward of the other (DualPipe's F&amp;B).</summary>
        ForwardBackward,
    }

    /// <summary>One entry of a rank's static op table. Micro-batch ids are implicit: the k-th forward of a phase on a rank is micro-batch k.</summary>
    /// <param name="Kind">The op.</param>
    /// <param name="Phase">The phase (pipe direction) of the forward or backward; for <see cref="OpKind.ForwardBackward"/>, the forward's.</param>
    /// <param name="BackwardPhase">For <see cref="OpKind.ForwardBackward"/>, the backward's phase; −1 otherwise.</param>
    public readonly record struct PipelineOp(OpKind Kind, int Phase, int BackwardPhase = -1)
    {
        /// <inheritdoc/>
        public override string ToString() => Kind switch
        {
            OpKind.Forward => $"F{Phase}",
            OpKind.Backward => $"B{Phase}",
            OpKind.BackwardInput => $"b{Phase}",
            OpKind.Weight => "W",
            _ => $"F{Phase}B{BackwardPhase}",
        };
    }

    /// <summary>
    /// A pipeline schedule as data: per rank, its ordered ops, and where each (phase, stage position) lives. Phase 0 runs stage
    /// positions 0 … P−1 downwards; DualPipe's phase 1 runs them upwards on mirrored ranks.
    /// </summary>
    public sealed class ScheduleTable
    {
        internal ScheduleTable(PipelineSchedule kind, int stages, int ranks, int microBatches, int phases, IReadOnlyList<IReadOnlyList<PipelineOp>> ops, Func<int, int, int> rankOf, bool chained = false)
        {
            Chained = chained;
            Kind = kind;
            Stages = stages;
            Ranks = ranks;
            MicroBatches = microBatches;
            Phases = phases;
            Ops = ops;
            _rankOf = rankOf;
        }

        private readonly Func<int, int, int> _rankOf;

        /// <summary>The schedule.</summary>
        public PipelineSchedule Kind { get; }

        /// <summary>Stage positions per phase.</summary>
        public int Stages { get; }

        /// <summary>Ranks.</summary>
        public int Ranks { get; }

        /// <summary>Micro-batches in the step (over all phases).</summary>
        public int MicroBatches { get; }

        /// <summary>Phases (pipe directions): 1, or 2 for DualPipe.</summary>
        public int Phases { get; }

        /// <summary>Each rank's ops in order.</summary>
        public IReadOnlyList<IReadOnlyList<PipelineOp>> Ops { get; }

        /// <summary>
        /// Whether phase 1 continues phase 0 (DualPipeV's V): every micro-batch runs the Stages positions of phase 0 down, then
        /// those of phase 1 back up, so the model has 2 × Stages stage positions and the loss is at phase 1's last position.
        /// Otherwise the phases are independent halves of the micro-batches through the same positions (DualPipe).
        /// </summary>
        public bool Chained { get; }

        /// <summary>Micro-batches that flow through each phase.</summary>
        public int MicroBatchesPerPhase => Chained ? MicroBatches : MicroBatches / Phases;

        /// <summary>Stage positions of the model: 2 × <see cref="Stages"/> for a chained table, else <see cref="Stages"/>.</summary>
        public int ModelStages => Chained ? 2 * Stages : Stages;

        /// <summary>The model stage position that (<paramref name="phase"/>, <paramref name="position"/>) runs.</summary>
        public int ModelStageOf(int phase, int position) => Chained && phase == 1 ? Stages + position : position;

        /// <summary>The rank that runs stage position <paramref name="position"/> of <paramref name="phase"/>.</summary>
        public int RankOf(int phase, int position) => _rankOf(phase, position);

        /// <summary>The stage position that rank <paramref name="rank"/> runs in <paramref name="phase"/>.</summary>
        public int PositionOf(int phase, int rank)
        {
            for (int position = 0; position < Stages; position++)
            {
                if (RankOf(phase, position) == rank) return position;
            }

            throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} runs no stage of phase {phase}");
        }
    }

    /// <summary>Builds the static op tables of 1F1B, ZB-H1 and DualPipe (distributed-notes §3).</summary>
    public static class Schedules
    {
        /// <summary>The command-line names of the schedules, in the order <see cref="Parse"/> knows them.</summary>
        public static IReadOnlyList<string> Names { get; } = new[] { "1f1b", "zbh1", "dualpipe", "dualpipev" };

        /// <summary>The schedule named <paramref name="name"/> (1f1b, zbh1, dualpipe or dualpipev).</summary>
        /// <exception cref="ArgumentException">Another name; the message lists the valid ones.</exception>
        public static PipelineSchedule Parse(string name) => name switch
        {
            "1f1b" => PipelineSchedule.OneFOneB,
            "zbh1" => PipelineSchedule.ZeroBubbleH1,
            "dualpipe" => PipelineSchedule.DualPipe,
            "dualpipev" => PipelineSchedule.DualPipeV,
            _ => throw new ArgumentException($"unknown schedule '{name}': expected {string.Join(", ", Names)}", nameof(name)),
        };

        /// <summary>The most stages a table is built for (DeepSeek-V3 trains with 16).</summary>
        public const int MaxStages = 1024;

        /// <summary>The most micro-batches a table is built for.</summary>
        public const int MaxMicroBatches = 65_536;

        /// <summary>The most stage × micro-batch cells a table is built for: its ops, and the simulator's work, grow with them.</summary>
        public const int MaxCells = 1 << 18;

        /// <summary>
        /// Why a table of <paramref name="stages"/> × <paramref name="microBatches"/> is too large to build, naming the limit;
        /// null when it is not.
        /// </summary>
        public static string? SizeProblem(int stages, int microBatches) =>
            stages > MaxStages ? $"stages = {stages}: at most {MaxStages} are supported"
            : microBatches > MaxMicroBatches ? $"micro-batches = {microBatches}: at most {MaxMicroBatches} are supported"
            : (long)stages * microBatches > MaxCells ? $"stages × micro-batches = {(long)stages * microBatches}: at most {MaxCells} are supported (the table holds a few ops per cell)"
            : null;

        /// <summary>The table of <paramref name="kind"/> for <paramref name="stages"/> stages and <paramref name="microBatches"/> micro-batches.</summary>
        /// <exception cref="ArgumentException">A combination the schedule cannot run (the messages match the MC6xxx diagnostics), or one beyond <see cref="SizeProblem"/>'s limits.</exception>
        public static ScheduleTable Build(PipelineSchedule kind, int stages, int microBatches)
        {
            if (stages < 1) throw new ArgumentException($"stages = {stages}: at least 1 is needed", nameof(stages));
            if (microBatches < 1) throw new ArgumentException($"micro-batches = {microBatches}: at least 1 is needed", nameof(microBatches));
            if (SizeProblem(stages, microBatches) is { } tooLarge) throw new ArgumentException(tooLarge, nameof(stages));
            return kind switch
            {
                PipelineSchedule.OneFOneB => OneFOneB(stages, microBatches, zeroBubble: false),
                PipelineSchedule.ZeroBubbleH1 => OneFOneB(stages, microBatches, zeroBubble: true),
                PipelineSchedule.DualPipe => DualPipe(stages, microBatches),
                PipelineSchedule.DualPipeV => DualPipeV(stages, microBatches),
                _ => throw new NotSupportedException($"{kind} tables are not built yet"),
            };
        }

        /// <summary>
        /// 1F1B: min(P−r−1, M) warm-up forwards, then forward/backward pairs, then the cool-down backwards. ZB-H1 splits each
        /// backward into its input part and a weight op: in the steady state rank r defers the weight ops of its first r
        /// iterations to the very end; every cool-down backward is followed by its weight op.
        /// </summary>
        private static ScheduleTable OneFOneB(int stages, int microBatches, bool zeroBubble)
        {
            var ops = new List<IReadOnlyList<PipelineOp>>();
            for (int rank = 0; rank < stages; rank++)
            {
                var list = new List<PipelineOp>();
                int warmup = Math.Min(stages - rank - 1, microBatches);
                for (int i = 0; i < warmup; i++) list.Add(new PipelineOp(OpKind.Forward, 0));
                int deferred = 0;
                for (int i = 0; i < microBatches - warmup; i++)
                {
                    list.Add(new PipelineOp(OpKind.Forward, 0));
                    if (!zeroBubble)
                    {
                        list.Add(new PipelineOp(OpKind.Backward, 0));
                        continue;
                    }

                    list.Add(new PipelineOp(OpKind.BackwardInput, 0));
                    if (i < rank) deferred++;
                    else list.Add(new PipelineOp(OpKind.Weight, 0));
                }

                for (int i = 0; i < warmup; i++)
                {
                    list.Add(new PipelineOp(zeroBubble ? OpKind.BackwardInput : OpKind.Backward, 0));
                    if (zeroBubble) list.Add(new PipelineOp(OpKind.Weight, 0));
                }

                for (int i = 0; i < deferred; i++) list.Add(new PipelineOp(OpKind.Weight, 0));
                ops.Add(list);
            }

            return new ScheduleTable(zeroBubble ? PipelineSchedule.ZeroBubbleH1 : PipelineSchedule.OneFOneB, stages, stages, microBatches, 1, ops, (phase, position) => position);
        }

        /// <summary>
        /// DualPipe (deepseek-ai/DualPipe's eight-step program): P ranks, rank r runs stage r of phase 0 (downwards) and stage
        /// P−1−r of phase 1 (upwards); half the micro-batches flow each way. Local phase 0 is the rank's own direction (phase 0
        /// on the first half of the ranks, phase 1 on the second).
        /// </summary>
        private static ScheduleTable DualPipe(int ranks, int chunks)
        {
            if (ranks % 2 != 0) throw new ArgumentException($"DualPipe needs an even number of stages, not {ranks}", nameof(ranks));
            if (chunks % 2 != 0 || chunks < 2 * ranks) throw new ArgumentException($"DualPipe needs an even number of micro-batches of at least 2 × {ranks}, not {chunks}", nameof(chunks));
            int halfRanks = ranks / 2;
            var ops = new List<IReadOnlyList<PipelineOp>>();
            for (int rank = 0; rank < ranks; rank++)
            {
                int half = Math.Min(rank, ranks - 1 - rank), flip = rank >= halfRanks ? 1 : 0;
                bool middle = rank == halfRanks - 1 || rank == halfRanks;
                ops.Add(DualProgram(halfRanks, half, middle, flip, chunks / 2));
            }

            return new ScheduleTable(PipelineSchedule.DualPipe, ranks, ranks, chunks, 2, ops, (phase, position) => phase == 0 ? position : ranks - 1 - position);
        }

        /// <summary>
        /// DualPipeV (distributed-notes §3.2): P stages folded onto N = P/2 ranks as a V. Rank r runs stage r going down (phase 0)
        /// and stage P−1−r coming back up (phase 1); every micro-batch enters at rank 0 and its loss is on rank 0, and the last
        /// rank turns the V without communication. Each rank runs DualPipe's program with h = r, the last rank as the middle.
        /// </summary>
        private static ScheduleTable DualPipeV(int stages, int chunks)
        {
            if (stages % 2 != 0) throw new ArgumentException($"DualPipeV needs an even number of stages, not {stages}", nameof(stages));
            if (chunks < stages) throw new ArgumentException($"DualPipeV needs at least {stages} micro-batches, not {chunks}", nameof(chunks));
            int ranks = stages / 2;
            var ops = new List<IReadOnlyList<PipelineOp>>();
            for (int rank = 0; rank < ranks; rank++) ops.Add(DualProgram(ranks, rank, rank == ranks - 1, 0, chunks));
            return new ScheduleTable(PipelineSchedule.DualPipeV, ranks, ranks, chunks, 2, ops, (phase, position) => phase == 0 ? position : ranks - 1 - position, chained: true);
        }

        /// <summary>
        /// The eight-step program of one DualPipe rank (deepseek-ai/DualPipe): <paramref name="halfRanks"/> ranks per direction,
        /// <paramref name="half"/> the distance from the nearer end, <paramref name="flip"/> 1 on the second half (its "own"
        /// direction is phase 1), <paramref name="chunks"/> micro-batches per direction.
        /// </summary>
        private static List<PipelineOp> DualProgram(int halfRanks, int half, bool middle, int flip, int chunks)
        {
            var list = new List<PipelineOp>();
            PipelineOp F(int local) => new(OpKind.Forward, local ^ flip);
            PipelineOp B(int local, bool zb = false) => new(zb ? OpKind.BackwardInput : OpKind.Backward, local ^ flip);
            PipelineOp FB(int forward, int backward) => new(OpKind.ForwardBackward, forward ^ flip, backward ^ flip);
            var W = new PipelineOp(OpKind.Weight, 0);

            for (int i = 0; i < (halfRanks - half - 1) * 2; i++) list.Add(F(0));                      // 1: nF0
            for (int i = 0; i < half + 1; i++)                                                           // 2: nF0F1
            {
                list.Add(F(0));
                list.Add(F(1));
            }

            for (int i = 0; i < halfRanks - half - 1; i++)                                               // 3: nB1W1F1 (zero bubble)
            {
                list.Add(B(1, zb: true));
                list.Add(W);
                list.Add(F(1));
            }

            for (int i = 0; i < chunks - (2 * halfRanks) + half + 1; i++)                                // 4: nF0B1F1B0 (main)
            {
                if (i == 0 && middle)
                {
                    list.Add(F(0));                                                                      // not overlapped on the middle ranks
                    list.Add(B(1));
                }
                else
                {
                    list.Add(FB(0, 1));
                }

                list.Add(FB(1, 0));
            }

            for (int i = 0; i < halfRanks - half - 1; i++)                                               // 5: nB1F1B0
            {
                list.Add(B(1));
                list.Add(FB(1, 0));
            }

            bool zeroBubble = false;                                                                     // 6: nB1B0, second half zero bubble
            for (int i = 0; i < half + 1; i++)
            {
                if (i == (half + 1) / 2 && half % 2 == 1) zeroBubble = true;
                list.Add(B(1, zeroBubble));
                if (i == (half + 1) / 2 && half % 2 == 0) zeroBubble = true;
                list.Add(B(0, zeroBubble));
            }

            for (int i = 0; i < halfRanks - half - 1; i++)                                               // 7: nWB0 (zero bubble)
            {
                list.Add(W);
                list.Add(B(0, zb: true));
            }

            for (int i = 0; i < half + 1; i++) list.Add(W);                                              // 8: nW
            return list;
        }
    }
}
