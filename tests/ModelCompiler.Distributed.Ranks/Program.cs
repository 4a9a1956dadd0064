// One MPI rank of a distributed test. Scenarios:
//   collectives  point-to-point on two tags in crossed order, all-reduce, broadcast, the start-up agreement check
//   fail         rank 1 throws while rank 0 waits for its message: the job must end, naming rank 1
//   die          rank 1's process ends abruptly (no exception, no abort) while rank 0 waits: mpirun must end the job
//   mismatch     rank 1 declares another model: start-up fails on every rank, naming rank 1
//   nccl         (CUDA) NCCL bootstrapped over MPI: all-reduce and grouped send/receive around the ring of ranks
//   pretrain S N M [cuda] [experts E]  TinySeek pre-training, N steps with schedule S (1f1b, zbh1, dualpipe, dualpipev) over M micro-batches
//                (with experts E, the world is a grid of pipelines × expert groups of E ranks, the experts spread over each group);
//                rank 0 prints each step's losses (round-trip format) and wall time for the test to compare with one process. With
//                cuda each rank trains on its GPU (CUDA_VISIBLE_DEVICES set per rank) and the pipeline's traffic goes through NCCL
//   alltoall     the counts exchange and a variable-sized all-to-all, on the world and on a split communicator
//   experts N [R] [limit] [cuda]  TinySeek pre-training, N steps, its routed experts spread over all ranks (R ranks per node, default 1;
//                with limit the declared GroupsPerToken, else every group allowed; with cuda on each rank's GPU, the exchanges on NCCL):
//                each rank prints each step's losses, the bytes its
//                dispatch and combine sent to other ranks and to other nodes, and at the end a hash of its selection biases' bits
//   experts-die  like experts, but rank 1 ends abruptly inside the second step's forward pass
//   single N [cuda] [M]  the same recipe in one process (on the CPU, or on one GPU), its 16 rows in M micro-batches (default 1):
//                the reference for the pipeline, and with M its per-micro-batch forward and backward times for the simulator
using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Distributed;
using ModelCompiler.Gpu;
#if WITH_TORCH
using TorchSharp;
#endif

string scenario = args.Length > 0 ? args[0] : "collectives";
using var mpi = Mpi.Initialize();
return mpi.RunOrAbort(() => scenario switch
{
    "collectives" => Collectives(mpi),
    "fail" => Fail(mpi),
    "die" => Die(mpi),
    "mismatch" => Mismatch(mpi),
    "nccl" => Nccl(mpi),
    "alltoall" => AllToAll(mpi),
#if WITH_TORCH
    "experts" => Experts(mpi, int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture),
        args.Length > 2 && int.TryParse(args[2], out int perNode) ? perNode : 1, args.Contains("limit"), dieAtStep: 0, args.Contains("cuda")),
    "experts-die" => Experts(mpi, 3, 1, limit: true, dieAtStep: 2, cuda: false),
    "pretrain" => Pretrain(mpi, args[1], int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture), int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture), args.Contains("cuda"),
        Array.IndexOf(args, "experts") is int at and > 0 ? int.Parse(args[at + 1], System.Globalization.CultureInfo.InvariantCulture) : 1),
    "single" => Single(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture), args.Contains("cuda"),
        args.Skip(2).Where(a => a != "cuda").Select(a => int.Parse(a, System.Globalization.CultureInfo.InvariantCulture)).FirstOrDefault(1)),
#endif
    _ => throw new ArgumentException($"unknown scenario '{scenario}'"),
});

static int Collectives(Mpi mpi)
{
    mpi.RequireSameOnAllRanks(0x5EED_0001, "model and schedule");
    int right = (mpi.Rank + 1) % mpi.Size, left = (mpi.Rank + mpi.Size - 1) % mpi.Size;
    const int Activations = 1, Gradients = 2;
    var activation = Enumerable.Range(0, 1 << 16).Select(i => (float)(mpi.Rank * 1000 + i)).ToArray();
    var gradient = new[] { -(float)mpi.Rank };
    var gotActivation = new float[activation.Length];
    var gotGradient = new float[1];
    // Even ranks send the gradient first, odd ranks receive the activation first: the tags keep the two channels apart.
    if (mpi.Rank % 2 == 0)
    {
        mpi.Send<float>(gradient, left, Gradients);
        mpi.Send<float>(activation, right, Activations);
        mpi.Receive<float>(gotActivation, left, Activations);
        mpi.Receive<float>(gotGradient, right, Gradients);
    }
    else
    {
        mpi.Receive<float>(gotActivation, left, Activations);
        mpi.Receive<float>(gotGradient, right, Gradients);
        mpi.Send<float>(gradient, left, Gradients);
        mpi.Send<float>(activation, right, Activations);
    }

    if (gotActivation[5] != (left * 1000) + 5 || gotGradient[0] != -right) throw new InvalidOperationException("point-to-point data mixed up");
    var sum = Enumerable.Repeat((float)(mpi.Rank + 1), 1000).ToArray();
    mpi.AllReduceSum(sum);
    if (sum.Any(v => v != mpi.Size * (mpi.Size + 1) / 2)) throw new InvalidOperationException($"all-reduce gave {sum[0]}");
    var broadcast = mpi.Rank == 0 ? new long[] { 42, 43 } : new long[2];
    mpi.Broadcast<long>(broadcast, 0);
    if (broadcast[1] != 43) throw new InvalidOperationException("broadcast lost");
    mpi.Barrier();
    Console.WriteLine($"rank {mpi.Rank}/{mpi.Size} ok ({mpi.LibraryVersion()})");
    return 0;
}

static int Fail(Mpi mpi)
{
    mpi.Barrier();
    if (mpi.Rank == 1) throw new InvalidOperationException("simulated failure in the backward pass of micro-batch 3");
    var buffer = new float[4];
    mpi.Receive<float>(buffer, 1, 7); // never sent: without the abort this rank would wait forever
    return 0;
}

static int Die(Mpi mpi)
{
    mpi.Barrier();
    if (mpi.Rank == 1) Environment.Exit(9); // a crash: no message, no MPI_Abort, MPI not finalised
    var buffer = new float[4];
    mpi.Receive<float>(buffer, 1, 7);
    return 0;
}

static int Mismatch(Mpi mpi)
{
    mpi.RequireSameOnAllRanks(mpi.Rank == 1 ? 0xBAD : 0x5EED_0001, "model and schedule");
    return 0;
}

#if WITH_TORCH
static int Pretrain(Mpi mpi, string schedule, int steps, int microBatches, bool cuda, int experts)
{
    var kind = ModelCompiler.Pipeline.Schedules.Parse(schedule);
    using var model = PipelineOptions.Model(cuda);
    var (pipeline, group) = experts > 1
        ? ModelCompiler.Torch.Parallel.ExpertParallelGroup.SplitGrid(mpi, experts, model.Spec.Moe!.RoutedExperts, cuda: cuda)
        : (mpi, null);
    using var ownedGroup = group; // its NCCL communicator, when there is one
    using var trainer = new ModelCompiler.Torch.Training.PipelineTrainer(model, PipelineOptions.Test, pipeline, kind, microBatches, expertParallel: group);
    for (int i = 0; i < steps; i++)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var report = trainer.TrainStep();
        if (mpi.Rank == 0) PipelineOptions.Print(report, clock.Elapsed.TotalSeconds);
    }

    if (experts > 1) PipelineOptions.PrintBiases(mpi, model);
    return 0;
}

static int Experts(Mpi mpi, int steps, int ranksPerNode, bool limit, int dieAtStep, bool cuda)
{
    var spec = Samples.TinySeek.TinySeek.Spec;
    if (!limit) spec = spec with { Moe = spec.Moe! with { GroupsPerToken = spec.Moe.ExpertGroups } };
    using var model = new ModelCompiler.Torch.DeepSeekCausalLM(spec, includeMtp: true, seed: 7);
    if (cuda) model.to(DeviceType.CUDA);
    using var group = new ModelCompiler.Torch.Parallel.ExpertParallelGroup(mpi, spec.Moe!.RoutedExperts, ranksPerNode, cuda);
    using var trainer = new ModelCompiler.Torch.Training.Pretrainer(model, PipelineOptions.Test, expertParallel: group);
    for (int i = 0; i < steps; i++)
    {
        if (i + 1 == dieAtStep && mpi.Rank == 1) Environment.Exit(9); // a crash between two exchanges: no message, no abort
        var before = group.Traffic;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var report = trainer.TrainStep();
        var traffic = group.Traffic.Since(before);
        Console.WriteLine(System.FormattableString.Invariant($"rank {mpi.Rank} bytes {traffic.ToOtherRanks} cross-node {traffic.ToOtherNodes} exchanges {traffic.Exchanges}"));
        if (mpi.Rank == 0) PipelineOptions.Print(report, clock.Elapsed.TotalSeconds);
    }

    PipelineOptions.PrintBiases(mpi, model);
    return 0;
}

static int Single(int steps, bool cuda, int microBatches)
{
    using var model = PipelineOptions.Model(cuda);
    var options = PipelineOptions.Test with { MicroBatchSize = PipelineOptions.Test.MicroBatchSize / microBatches, AccumulationSteps = microBatches };
    using var trainer = new ModelCompiler.Torch.Training.Pretrainer(model, options);
    for (int i = 0; i < steps; i++)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var report = trainer.TrainStep();
        PipelineOptions.Print(report, clock.Elapsed.TotalSeconds);
    }

    return 0;
}
#endif

static int AllToAll(Mpi mpi)
{
    // Rank r sends r + d + 1 values to rank d, each equal to 100·r + d.
    foreach (var (group, what) in new[] { (mpi, "world"), (mpi.Split(mpi.Rank % 2, mpi.Rank), "split") })
    {
        var counts = Enumerable.Range(0, group.Size).Select(d => group.Rank + d + 1).ToArray();
        var received = group.AllToAll(counts.Select(c => (long)c).ToArray());
        if (!received.Select((c, source) => c == source + group.Rank + 1).All(ok => ok)) throw new InvalidOperationException($"{what}: counts {string.Join(",", received)}");
        var send = counts.SelectMany((c, d) => Enumerable.Repeat((float)((100 * group.Rank) + d), c)).ToArray();
        var receive = new float[received.Sum()];
        group.AllToAll<float>(send, counts, receive, received.Select(c => (int)c).ToArray());
        int at = 0;
        for (int source = 0; source < group.Size; source++)
        {
            for (int i = 0; i < received[source]; i++, at++)
            {
                if (receive[at] != (100 * source) + group.Rank) throw new InvalidOperationException($"{what}: value {at} from rank {source} is {receive[at]}");
            }
        }

        if (group != mpi) group.Dispose();
    }

    Console.WriteLine($"rank {mpi.Rank}/{mpi.Size} all-to-all ok");
    return 0;
}

static int Nccl(Mpi mpi)
{
    using var device = GpuDevice.Create(GpuBackend.Cuda);
    using var nccl = NcclCommunicator.Create(mpi);
    var stream = device.Accelerator.DefaultStream;
    const int Count = 1 << 20;
    using var data = device.Accelerator.Allocate1D(Enumerable.Range(0, Count).Select(i => (float)(mpi.Rank + 1) * (i % 97)).ToArray());
    nccl.AllReduceSum(data.View, stream);
    stream.Synchronize();
    nccl.ThrowIfFailed();
    float factor = mpi.Size * (mpi.Size + 1) / 2f;
    var reduced = data.GetAsArray1D();
    int wrong = Enumerable.Range(0, Count).Count(i => reduced[i] != factor * (i % 97));
    if (wrong > 0) throw new InvalidOperationException($"all-reduce: {wrong} of {Count} values wrong");

    int right = (mpi.Rank + 1) % mpi.Size, left = (mpi.Rank + mpi.Size - 1) % mpi.Size; // with one rank, both are itself
    using var send = device.Accelerator.Allocate1D(Enumerable.Range(0, Count).Select(i => (float)(mpi.Rank * 10 + i % 13)).ToArray());
    using var received = device.Accelerator.Allocate1D(Enumerable.Repeat(float.NaN, Count).ToArray());
    nccl.Exchange([(send.View.BaseView, right)], [(received.View.BaseView, left)], stream);
    stream.Synchronize();
    nccl.ThrowIfFailed();
    var got = received.GetAsArray1D();
    wrong = Enumerable.Range(0, Count).Count(i => got[i] != left * 10 + i % 13);
    if (wrong > 0) throw new InvalidOperationException($"send/receive: {wrong} of {Count} values wrong");
    Console.WriteLine($"rank {mpi.Rank}/{mpi.Size}: NCCL {NcclCommunicator.Version()} on {device.Name}: all-reduce of {Count} floats and grouped send/receive (to rank {right}, from rank {left}) correct");
    return 0;
}

#if WITH_TORCH
/// <summary>The recipe the distributed tests train with, in one process and across ranks alike.</summary>
public static class PipelineOptions
{
    /// <summary>Seed 7, 16 rows per step.</summary>
    public static ModelCompiler.Torch.Training.PretrainOptions Test { get; } = new() { Seed = 7, MicroBatchSize = 16, Steps = 5 };

    /// <summary>TinySeek with seed 7, on this rank's GPU (the first one it sees) or on the CPU.</summary>
    public static ModelCompiler.Torch.DeepSeekCausalLM Model(bool cuda)
    {
        var model = new ModelCompiler.Torch.DeepSeekCausalLM(Samples.TinySeek.TinySeek.Spec, includeMtp: true, seed: 7);
        if (cuda) model.to(DeviceType.CUDA);
        return model;
    }

    /// <summary>
    /// A short line (long ones from several ranks interleave in mpirun's output): a hash of the selection biases' bits, and how
    /// many moved from 0.
    /// </summary>
    public static void PrintBiases(Mpi mpi, ModelCompiler.Torch.DeepSeekCausalLM model)
    {
        var biases = model.MoeLayers.Select(m => m.Gate.SelectionBias!.cpu().data<float>().ToArray()).SelectMany(b => b).ToArray();
        ulong hash = 14695981039346656037;
        foreach (float b in biases) hash = (hash ^ BitConverter.SingleToUInt32Bits(b)) * 1099511628211;
        Console.WriteLine($"rank {mpi.Rank} biases {hash:x16} moved {biases.Count(b => b != 0)} of {biases.Length}");
    }

    /// <summary>One step's line: losses in round-trip format, then the step's wall time.</summary>
    public static void Print(ModelCompiler.Torch.Training.StepReport report, double seconds) =>
        Console.WriteLine(System.FormattableString.Invariant(
            $"step {report.Step} loss {report.Loss:R} mtp {report.MtpLoss:R} norm {report.GradientNorm:R} seconds {seconds:F4} forward {report.Timings.Forward:F4} backward {report.Timings.Backward:F4} optimizer {report.Timings.Optimizer:F4}"));
}
#endif
