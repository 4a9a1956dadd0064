using ModelCompiler.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Parallel;

/// <summary>Bytes one rank's dispatch and combine sent to other ranks, and the part of them that left its node.</summary>
/// <param name="ToOtherRanks">Bytes sent to the other ranks of the group (what stays on this rank is not counted).</param>
/// <param name="ToOtherNodes">The part of <paramref name="ToOtherRanks"/> sent to ranks of another node.</param>
/// <param name="Exchanges">All-to-all exchanges that carried them (dispatch and combine, forward and backward).</param>
public readonly record struct ExpertTraffic(long ToOtherRanks, long ToOtherNodes, long Exchanges)
{
    /// <summary>The traffic since <paramref name="earlier"/>.</summary>
    public ExpertTraffic Since(ExpertTraffic earlier) =>
        new(ToOtherRanks - earlier.ToOtherRanks, ToOtherNodes - earlier.ToOtherNodes, Exchanges - earlier.Exchanges);
}

/// <summary>
/// The ranks that share the routed experts of every MoE layer (expert parallelism, deepseek-reference §2.4): rank r holds
/// experts [r·E/N, (r+1)·E/N), so with the experts' groups laid out on consecutive ranks a group is a set of ranks, and ranks
/// are grouped into nodes of <see cref="RanksPerNode"/>. Each rank routes its own tokens; dispatch sends a token's hidden state
/// once to every rank that holds one of its experts (with the gate weights of those experts), combine sends back one weighted
/// sum per (token, rank). Both are all-to-alls over <see cref="Communicator"/> with the counts exchanged first (MPI): rows on
/// the CPU go through MPI, rows on a CUDA GPU through NCCL grouped sends and receives on a stream of the group's own (a group
/// made with <c>cuda: true</c>; that path is compiled but has not yet run on GPUs). The traffic is counted as it is sent.
/// </summary>
public sealed class ExpertParallelGroup : IDisposable
{
    private readonly (NcclCommunicator Comm, DriverStream Stream)? _nccl;
    private ExpertTraffic _traffic;

    /// <summary>Creates the group over <paramref name="communicator"/> for layers of <paramref name="routedExperts"/> experts.</summary>
    /// <param name="communicator">The ranks of the group (MPI_COMM_WORLD, or a communicator <see cref="Mpi.Split"/> made).</param>
    /// <param name="routedExperts">Routed experts per MoE layer; the ranks must divide them.</param>
    /// <param name="ranksPerNode">Ranks per node, for the cross-node count (1: every other rank is another node).</param>
    /// <param name="cuda">Whether the rows live on this rank's CUDA GPU: the group then bootstraps an NCCL communicator over
    /// <paramref name="communicator"/> (collective: every rank of it makes its group at the same point).</param>
    public ExpertParallelGroup(Mpi communicator, int routedExperts, int ranksPerNode = 1, bool cuda = false)
    {
        if (routedExperts % communicator.Size != 0)
        {
            throw new ArgumentException($"{routedExperts} routed experts do not divide over {communicator.Size} expert-parallel ranks", nameof(routedExperts));
        }

        if (ranksPerNode < 1 || communicator.Size % ranksPerNode != 0)
        {
            throw new ArgumentException($"{communicator.Size} ranks do not make nodes of {ranksPerNode}", nameof(ranksPerNode));
        }

        Communicator = communicator;
        RoutedExperts = routedExperts;
        ExpertsPerRank = routedExperts / communicator.Size;
        RanksPerNode = ranksPerNode;
        if (cuda) _nccl = (NcclCommunicator.Create(communicator), DriverStream.Create());
    }

    /// <summary>
    /// Cuts <paramref name="world"/> into a grid of pipelines × expert groups: consecutive ranks form an expert group of
    /// <paramref name="expertRanks"/> (world rank w has place w mod E in its group), and the ranks with the same place form a
    /// pipeline (stage rank w div E). Every rank of the world must call it.
    /// </summary>
    public static (Mpi Pipeline, ExpertParallelGroup Experts) SplitGrid(Mpi world, int expertRanks, int routedExperts, int ranksPerNode = 1, bool cuda = false)
    {
        if (expertRanks < 1 || world.Size % expertRanks != 0)
        {
            throw new ArgumentException($"{world.Size} ranks do not make expert groups of {expertRanks}", nameof(expertRanks));
        }

        var pipeline = world.Split(world.Rank % expertRanks, world.Rank / expertRanks);
        var experts = world.Split(world.Rank / expertRanks, world.Rank % expertRanks);
        return (pipeline, new ExpertParallelGroup(experts, routedExperts, ranksPerNode, cuda));
    }

    /// <summary>The group's communicator.</summary>
    public Mpi Communicator { get; }

    /// <summary>This rank's place in the group.</summary>
    public int Rank => Communicator.Rank;

    /// <summary>Ranks in the group.</summary>
    public int Size => Communicator.Size;

    /// <summary>Routed experts per MoE layer.</summary>
    public int RoutedExperts { get; }

    /// <summary>Experts each rank holds.</summary>
    public int ExpertsPerRank { get; }

    /// <summary>Ranks per node.</summary>
    public int RanksPerNode { get; }

    /// <summary>The first expert this rank holds.</summary>
    public int FirstExpert => Rank * ExpertsPerRank;

    /// <summary>Whether this rank holds <paramref name="expert"/>.</summary>
    public bool Holds(int expert) => expert / ExpertsPerRank == Rank;

    /// <summary>What this rank has sent so far.</summary>
    public ExpertTraffic Traffic => _traffic;

    /// <summary>
    /// Rows [S, D] sent rank by rank (<paramref name="sendCounts"/> rows to each) → the rows [R, D] the ranks sent here,
    /// rank by rank (<paramref name="receiveCounts"/>). FP32 on the host; the result is on <paramref name="rows"/>' device.
    /// </summary>
    public Tensor Exchange(Tensor rows, int[] sendCounts, int[] receiveCounts)
    {
        long width = rows.shape[1];
        if (rows.device.type == DeviceType.CUDA) return ExchangeOnDevice(rows, sendCounts, receiveCounts, width);
        var host = rows.detach().to(ScalarType.Float32).cpu().contiguous();
        var send = host.numel() == 0 ? [] : host.data<float>().ToArray(); // TorchSharp's accessor throws on an empty tensor
        var receive = new float[checked(receiveCounts.Sum() * width)];
        Communicator.AllToAll<float>(send, Scale(sendCounts, width), receive, Scale(receiveCounts, width));
        Count(sendCounts, width * sizeof(float));
        return tensor(receive, [receiveCounts.Sum(), width]).to(rows.device);
    }

    /// <summary>The exchange of rows on the GPU: one NCCL group of a send and a receive per rank with rows to move (itself included).</summary>
    private Tensor ExchangeOnDevice(Tensor rows, int[] sendCounts, int[] receiveCounts, long width)
    {
        if (_nccl is not { } nccl) throw new InvalidOperationException("rows on a CUDA GPU need a group made with cuda: true (NCCL)");
        var send = rows.detach().to(ScalarType.Float32).contiguous();
        var receive = empty([receiveCounts.Sum(), width], ScalarType.Float32, rows.device);
        static List<(IntPtr, long, int)> Slices(Tensor buffer, int[] counts, long width)
        {
            var slices = new List<(IntPtr, long, int)>();
            long row = 0;
            for (int peer = 0; peer < counts.Length; row += counts[peer], peer++)
            {
                if (counts[peer] > 0) slices.Add((DeviceAddress.Of(buffer) + (nint)(row * width * sizeof(float)), counts[peer] * width, peer));
            }

            return slices;
        }

        DriverStream.SynchronizeDefault(); // the rows have been computed, and the receive buffer is free
        nccl.Comm.Exchange(Slices(send, sendCounts, width), Slices(receive, receiveCounts, width), nccl.Stream.Handle);
        nccl.Stream.Synchronize();
        nccl.Comm.ThrowIfFailed();
        Count(sendCounts, width * sizeof(float));
        return receive;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_nccl is not { } nccl) return;
        nccl.Comm.Dispose();
        nccl.Stream.Dispose();
    }

    /// <summary>Integers (expert ids) sent like the rows of a tensor exchange, <paramref name="width"/> per row; no gradient.</summary>
    public long[] Exchange(long[] rows, int width, int[] sendCounts, int[] receiveCounts)
    {
        var receive = new long[checked(receiveCounts.Sum() * width)];
        Communicator.AllToAll<long>(rows, Scale(sendCounts, width), receive, Scale(receiveCounts, width));
        Count(sendCounts, (long)width * sizeof(long));
        return receive;
    }

    /// <summary>The rows every rank will receive from each rank, given what this rank sends to each (MPI_Alltoall of the counts).</summary>
    public int[] ExchangeCounts(int[] sendCounts) =>
        Communicator.AllToAll(sendCounts.Select(c => (long)c).ToArray()).Select(c => checked((int)c)).ToArray();

    private static int[] Scale(int[] counts, long width) => counts.Select(c => checked((int)(c * width))).ToArray();

    private void Count(int[] sendCounts, long bytesPerRow)
    {
        long toRanks = 0, toNodes = 0;
        for (int d = 0; d < sendCounts.Length; d++)
        {
            if (d == Rank) continue;
            toRanks += sendCounts[d] * bytesPerRow;
            if (d / RanksPerNode != Rank / RanksPerNode) toNodes += sendCounts[d] * bytesPerRow;
        }

        _traffic = new ExpertTraffic(_traffic.ToOtherRanks + toRanks, _traffic.ToOtherNodes + toNodes, _traffic.Exchanges + 1);
    }
}

/// <summary>
/// <see cref="ExpertParallelGroup.Exchange(Tensor, int[], int[])"/> as an autograd function: the backward pass sends the
/// gradients back the way the rows came (the same exchange with the counts swapped). Every rank of the group must run the same
/// sequence of exchanges, forward and backward; the MoE layer keeps its graph the same on every rank so that they do.
/// </summary>
internal sealed class ExpertExchange : autograd.SingleTensorFunction<ExpertExchange>
{
    public override string Name => nameof(ExpertExchange);

    /// <summary>Exchanges <paramref name="rows"/> over <paramref name="group"/>; differentiable.</summary>
    public static Tensor Apply(Tensor rows, ExpertParallelGroup group, int[] sendCounts, int[] receiveCounts) =>
        apply(rows, group, sendCounts, receiveCounts);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var (rows, group, send, receive) = ((Tensor)vars[0], (ExpertParallelGroup)vars[1], (int[])vars[2], (int[])vars[3]);
        ctx.save_data("group", group);
        ctx.save_data("send", send);
        ctx.save_data("receive", receive);
        ctx.save_data("dtype", rows.dtype);
        return group.Exchange(rows, send, receive).to(rows.dtype);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradient)
    {
        var group = (ExpertParallelGroup)ctx.get_data("group");
        var back = group.Exchange(gradient, (int[])ctx.get_data("receive"), (int[])ctx.get_data("send")).to((ScalarType)ctx.get_data("dtype"));
        return [back, null!, null!, null!];
    }
}
