using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace ModelCompiler.Distributed;

/// <summary>An NCCL call that failed, with NCCL's description.</summary>
public sealed class NcclException(string message) : Exception(message);

/// <summary>
/// One NCCL communicator over CUDA device buffers (distributed-notes §2.4): the minimal set a pipeline needs — all-reduce
/// for gradients, grouped point-to-point for activations. Calls only enqueue on the given stream; synchronise it before
/// reading. NCCL point-to-point has no tags: messages between two ranks match in issue order, which is why activations and
/// gradients use separate communicators (channels).
/// </summary>
public sealed unsafe partial class NcclCommunicator : IDisposable
{
    private const string Library = "nccl";
    private IntPtr _comm;

    static NcclCommunicator() => NativeLibraries.EnsureResolver();

    private NcclCommunicator(IntPtr comm, int ranks, int rank)
    {
        _comm = comm;
        Ranks = ranks;
        Rank = rank;
    }

    /// <summary>The 128-byte id every rank of one communicator must share.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct UniqueId
    {
        /// <summary>NCCL's opaque bytes.</summary>
        public fixed byte Internal[128];
    }

    private enum DataType
    {
        Float32 = 7,
    }

    /// <summary>Ranks in the communicator.</summary>
    public int Ranks { get; }

    /// <summary>This process's rank in it.</summary>
    public int Rank { get; }

    /// <summary>NCCL's version code (22809 for 2.28.9).</summary>
    public static int Version()
    {
        Check(ncclGetVersion(out int version), "ncclGetVersion");
        return version;
    }

    /// <summary>A fresh id (on one rank; the others receive it).</summary>
    public static UniqueId CreateId()
    {
        Check(ncclGetUniqueId(out var id), "ncclGetUniqueId");
        return id;
    }

    /// <summary>Joins the communicator <paramref name="id"/> as <paramref name="rank"/> of <paramref name="ranks"/> (collective: every rank calls it).</summary>
    public static NcclCommunicator Create(int ranks, int rank, UniqueId id)
    {
        Check(ncclCommInitRank(out IntPtr comm, ranks, id, rank), $"ncclCommInitRank(rank {rank} of {ranks})");
        return new NcclCommunicator(comm, ranks, rank);
    }

    /// <summary>Rank 0 of <paramref name="mpi"/> creates the id, MPI broadcasts it, every rank joins: one communicator per call (one channel).</summary>
    public static NcclCommunicator Create(Mpi mpi)
    {
        var id = mpi.Rank == 0 ? CreateId() : default;
        var bytes = new Span<byte>(&id, sizeof(UniqueId));
        mpi.Broadcast(bytes, 0);
        return Create(mpi.Size, mpi.Rank, id);
    }

    /// <summary>Sum over all ranks, in place.</summary>
    public void AllReduceSum(ArrayView<float> data, AcceleratorStream stream) =>
        Check(ncclAllReduce(Pointer(data), Pointer(data), (nuint)data.Length, DataType.Float32, 0, _comm, Stream(stream)), "ncclAllReduce", _comm);

    /// <summary>
    /// Sends and receives in one NCCL group (so two ranks that send to each other do not deadlock): each (buffer, peer)
    /// send and each (buffer, peer) receive, in the order given — the order that matches them between a pair of ranks.
    /// </summary>
    public void Exchange(IReadOnlyList<(ArrayView<float> Data, int Peer)> sends, IReadOnlyList<(ArrayView<float> Data, int Peer)> receives, AcceleratorStream stream)
    {
        Check(ncclGroupStart(), "ncclGroupStart");
        foreach (var (data, peer) in sends) Check(ncclSend(Pointer(data), (nuint)data.Length, DataType.Float32, peer, _comm, Stream(stream)), $"ncclSend to rank {peer}", _comm);
        foreach (var (data, peer) in receives) Check(ncclRecv(Pointer(data), (nuint)data.Length, DataType.Float32, peer, _comm, Stream(stream)), $"ncclRecv from rank {peer}", _comm);
        Check(ncclGroupEnd(), "ncclGroupEnd", _comm);
    }

    /// <summary>Sum over all ranks, in place, of <paramref name="count"/> floats at the device address <paramref name="data"/> (another library's tensor), enqueued on the CUDA stream handle <paramref name="stream"/>.</summary>
    public void AllReduceSum(IntPtr data, long count, IntPtr stream) =>
        Check(ncclAllReduce(data, data, (nuint)count, DataType.Float32, 0, _comm, stream), "ncclAllReduce", _comm);

    /// <summary>Sends <paramref name="count"/> floats at the device address <paramref name="data"/> to <paramref name="peer"/>, enqueued on <paramref name="stream"/>; the peer's matching <see cref="Receive"/> completes it.</summary>
    public void Send(IntPtr data, long count, int peer, IntPtr stream) =>
        Check(ncclSend(data, (nuint)count, DataType.Float32, peer, _comm, stream), $"ncclSend to rank {peer}", _comm);

    /// <summary>Receives <paramref name="count"/> floats from <paramref name="peer"/> into the device address <paramref name="data"/>, enqueued on <paramref name="stream"/>.</summary>
    public void Receive(IntPtr data, long count, int peer, IntPtr stream) =>
        Check(ncclRecv(data, (nuint)count, DataType.Float32, peer, _comm, stream), $"ncclRecv from rank {peer}", _comm);

    /// <summary>
    /// Sends and receives in one NCCL group, on device addresses (another library's tensors): each (address, count, peer)
    /// send and receive in the order given. A group also sets up the connections it uses in both directions at once, which
    /// single calls would do one peer at a time, each waiting for its peer to make the matching call.
    /// </summary>
    public void Exchange(IReadOnlyList<(IntPtr Data, long Count, int Peer)> sends, IReadOnlyList<(IntPtr Data, long Count, int Peer)> receives, IntPtr stream)
    {
        Check(ncclGroupStart(), "ncclGroupStart");
        foreach (var (data, count, peer) in sends) Check(ncclSend(data, (nuint)count, DataType.Float32, peer, _comm, stream), $"ncclSend to rank {peer}", _comm);
        foreach (var (data, count, peer) in receives) Check(ncclRecv(data, (nuint)count, DataType.Float32, peer, _comm, stream), $"ncclRecv from rank {peer}", _comm);
        Check(ncclGroupEnd(), "ncclGroupEnd", _comm);
    }

    /// <summary>Throws when NCCL reported an asynchronous error (a peer that died, a network failure).</summary>
    public void ThrowIfFailed()
    {
        Check(ncclCommGetAsyncError(_comm, out int error), "ncclCommGetAsyncError");
        Check(error, "an earlier NCCL operation");
    }

    /// <summary>
    /// Ends the communicator without waiting for its operations: after a failure, when a send or receive may never be
    /// matched (<see cref="Dispose"/> would wait for it forever).
    /// </summary>
    public void Abort()
    {
        if (_comm == IntPtr.Zero) return;
        ncclCommAbort(_comm);
        _comm = IntPtr.Zero;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_comm == IntPtr.Zero) return;
        ncclCommDestroy(_comm);
        _comm = IntPtr.Zero;
    }

    private static IntPtr Pointer<T>(ArrayView<T> view)
        where T : unmanaged => view.LoadEffectiveAddressAsPtr();

    private static IntPtr Stream(AcceleratorStream stream) =>
        stream is CudaStream cuda ? cuda.StreamPtr : throw new ArgumentException("NCCL needs a CUDA stream; this device is not a CUDA GPU.", nameof(stream));

    private static void Check(int result, string call, IntPtr comm = default)
    {
        if (result == 0) return;
        string text = Marshal.PtrToStringAnsi(ncclGetErrorString(result)) ?? "unknown";
        string detail = comm != IntPtr.Zero ? Marshal.PtrToStringAnsi(ncclGetLastError(comm)) ?? string.Empty : string.Empty;
        throw new NcclException($"{call} failed: {text}{(detail.Length > 0 ? " — " + detail : string.Empty)} (ncclResult {result})");
    }

    [LibraryImport(Library)] private static partial int ncclGetVersion(out int version);
    [LibraryImport(Library)] private static partial int ncclGetUniqueId(out UniqueId id);
    [LibraryImport(Library)] private static partial int ncclCommInitRank(out IntPtr comm, int ranks, UniqueId id, int rank);
    [LibraryImport(Library)] private static partial int ncclCommDestroy(IntPtr comm);
    [LibraryImport(Library)] private static partial int ncclCommAbort(IntPtr comm);
    [LibraryImport(Library)] private static partial int ncclCommGetAsyncError(IntPtr comm, out int error);
    [LibraryImport(Library)] private static partial IntPtr ncclGetErrorString(int result);
    [LibraryImport(Library)] private static partial IntPtr ncclGetLastError(IntPtr comm);
    [LibraryImport(Library)] private static partial int ncclAllReduce(IntPtr send, IntPtr receive, nuint count, DataType type, int op, IntPtr comm, IntPtr stream);
    [LibraryImport(Library)] private static partial int ncclSend(IntPtr send, nuint count, DataType type, int peer, IntPtr comm, IntPtr stream);
    [LibraryImport(Library)] private static partial int ncclRecv(IntPtr receive, nuint count, DataType type, int peer, IntPtr comm, IntPtr stream);
    [LibraryImport(Library)] private static partial int ncclGroupStart();
    [LibraryImport(Library)] private static partial int ncclGroupEnd();
}
