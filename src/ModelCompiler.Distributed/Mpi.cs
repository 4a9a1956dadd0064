using System.Runtime.InteropServices;

namespace ModelCompiler.Distributed;

/// <summary>An MPI call that returned an error, with MPI's own description of it.</summary>
public sealed class MpiException(string message) : Exception(message);

/// <summary>
/// MPI through a thin P/Invoke binding (distributed-notes §1.4): works with Open MPI, whose handles are addresses of exported
/// globals, and with MPICH, whose handles are 32-bit constants. Handles travel as <see cref="IntPtr"/>. One instance per
/// process for MPI_COMM_WORLD: <see cref="Initialize"/> once, <see cref="Dispose"/> finalises. <see cref="Split"/> makes an
/// instance for a sub-communicator (an expert-parallel group inside a pipeline stage, say) with the same operations; disposing
/// it frees the communicator. Ranks are launched by <c>mpirun</c>.
/// </summary>
public sealed unsafe partial class Mpi : IDisposable
{
    private const string Library = "mpi";
    private readonly IntPtr _world, _byte, _float, _sum, _statusIgnore;
    private readonly Mpi? _parent;
    private bool _finalized;

    static Mpi() => NativeLibraries.EnsureResolver();

    private Mpi()
    {
        int argc = 0;
        byte** argv = null;
        Check(MPI_Init_thread(&argc, &argv, 1 /* MPI_THREAD_FUNNELED */, out _), "MPI_Init_thread");
        IsOpenMpi = NativeLibrary.TryGetExport(NativeLibraries.MpiHandle, "ompi_mpi_comm_world", out _world);
        if (IsOpenMpi)
        {
            _byte = Export("ompi_mpi_byte");
            _float = Export("ompi_mpi_float");
            _sum = Export("ompi_mpi_op_sum");
            _statusIgnore = IntPtr.Zero;
        }
        else
        {
            // MPICH's constants (MS-MPI uses the same).
            _world = 0x44000000;
            _byte = 0x4c00010d;
            _float = 0x4c00040a;
            _sum = 0x58000003;
            _statusIgnore = 1;
        }

        Check(MPI_Comm_rank(_world, out int rank), "MPI_Comm_rank");
        Check(MPI_Comm_size(_world, out int size), "MPI_Comm_size");
        Rank = rank;
        Size = size;
    }

    private Mpi(Mpi parent, IntPtr communicator)
    {
        _parent = parent;
        _world = communicator;
        (_byte, _float, _sum, _statusIgnore, IsOpenMpi) = (parent._byte, parent._float, parent._sum, parent._statusIgnore, parent.IsOpenMpi);
        Check(MPI_Comm_rank(_world, out int rank), "MPI_Comm_rank");
        Check(MPI_Comm_size(_world, out int size), "MPI_Comm_size");
        Rank = rank;
        Size = size;
    }

    /// <summary>This process's rank in the communicator (MPI_COMM_WORLD, or the group <see cref="Split"/> made).</summary>
    public int Rank { get; }

    /// <summary>Number of ranks in the communicator.</summary>
    public int Size { get; }

    /// <summary>Whether the library is Open MPI (else MPICH).</summary>
    public bool IsOpenMpi { get; }

    /// <summary>Initialises MPI (once per process).</summary>
    public static Mpi Initialize() => new();

    /// <summary>The library's version line (MPI_Get_library_version).</summary>
    public string LibraryVersion()
    {
        var buffer = new byte[8192];
        fixed (byte* p = buffer)
        {
            Check(MPI_Get_library_version(p, out int length), "MPI_Get_library_version");
            return System.Text.Encoding.ASCII.GetString(buffer, 0, length).Split('\n')[0].TrimEnd('\0').Trim(); // Open MPI counts the terminating NUL
        }
    }

    /// <summary>Sends <paramref name="data"/> to <paramref name="destination"/> with <paramref name="tag"/> (blocking).</summary>
    public void Send<T>(ReadOnlySpan<T> data, int destination, int tag)
        where T : unmanaged
    {
        fixed (T* p = data) Check(MPI_Send(p, checked(data.Length * sizeof(T)), _byte, destination, tag, _world), $"MPI_Send to rank {destination}, tag {tag}");
    }

    /// <summary>Receives exactly <paramref name="data"/>.Length values from <paramref name="source"/> with <paramref name="tag"/> (blocking).</summary>
    public void Receive<T>(Span<T> data, int source, int tag)
        where T : unmanaged
    {
        fixed (T* p = data) Check(MPI_Recv(p, checked(data.Length * sizeof(T)), _byte, source, tag, _world, _statusIgnore), $"MPI_Recv from rank {source}, tag {tag}");
    }

    /// <summary>A send in flight (<see cref="SendAsync"/>): its buffer stays pinned until <see cref="WaitAll"/>.</summary>
    public sealed class Request
    {
        internal Request(Mpi owner, IntPtr handle, GCHandle pin, string what)
        {
            Owner = owner;
            Handle = handle;
            Pin = pin;
            What = what;
        }

        internal Mpi Owner { get; }

        internal IntPtr Handle;

        internal GCHandle Pin { get; }

        internal string What { get; }
    }

    /// <summary>
    /// Starts sending <paramref name="data"/> (MPI_Isend) and returns at once: two ranks that send to each other at the same
    /// time (1F1B's steady state: activations one way, gradients the other) cannot block each other.
    /// </summary>
    public Request SendAsync<T>(T[] data, int destination, int tag)
        where T : unmanaged
    {
        var pin = GCHandle.Alloc(data, GCHandleType.Pinned);
        IntPtr handle = IntPtr.Zero;
        string what = $"MPI_Isend to rank {destination}, tag {tag}";
        int code = MPI_Isend((void*)pin.AddrOfPinnedObject(), checked(data.Length * sizeof(T)), _byte, destination, tag, _world, &handle);
        if (code != 0)
        {
            pin.Free();
            Check(code, what);
        }

        return new Request(this, handle, pin, what);
    }

    /// <summary>Waits for every request and unpins its buffer.</summary>
    public static void WaitAll(IEnumerable<Request> requests)
    {
        foreach (var request in requests)
        {
            try
            {
                IntPtr handle = request.Handle;
                request.Owner.Check(MPI_Wait(&handle, request.Owner._statusIgnore), "MPI_Wait for " + request.What);
            }
            finally
            {
                request.Pin.Free();
            }
        }
    }

    /// <summary>Sum of <paramref name="data"/> over all ranks, in place.</summary>
    public void AllReduceSum(Span<float> data)
    {
        void* inPlace = IsOpenMpi ? (void*)1 : (void*)-1; // MPI_IN_PLACE: ((void*)1) in Open MPI, ((void*)-1) in MPICH
        fixed (float* p = data) Check(MPI_Allreduce(inPlace, p, data.Length, _float, _sum, _world), "MPI_Allreduce");
    }

    /// <summary>Broadcasts <paramref name="data"/> from <paramref name="root"/> to every rank.</summary>
    public void Broadcast<T>(Span<T> data, int root)
        where T : unmanaged
    {
        fixed (T* p = data) Check(MPI_Bcast(p, checked(data.Length * sizeof(T)), _byte, root, _world), $"MPI_Bcast from rank {root}");
    }

    /// <summary>Gathers one value from every rank on every rank.</summary>
    public long[] AllGather(long value)
    {
        var result = new long[Size];
        fixed (long* p = result) Check(MPI_Allgather(&value, sizeof(long), _byte, p, sizeof(long), _byte, _world), "MPI_Allgather");
        return result;
    }

    /// <summary>
    /// Every rank sends <paramref name="send"/>[d] to rank d and receives one value from each rank (MPI_Alltoall): the counts
    /// that let a variable-sized exchange (<see cref="AllToAll{T}"/>) size its buffers.
    /// </summary>
    public long[] AllToAll(ReadOnlySpan<long> send)
    {
        if (send.Length != Size) throw new ArgumentException($"one value per rank: {Size}, not {send.Length}", nameof(send));
        var result = new long[Size];
        fixed (long* s = send)
        fixed (long* r = result)
        {
            Check(MPI_Alltoall(s, sizeof(long), _byte, r, sizeof(long), _byte, _world), "MPI_Alltoall");
        }

        return result;
    }

    /// <summary>
    /// A variable-sized all-to-all (MPI_Alltoallv): rank d receives the <paramref name="sendCounts"/>[d] values that follow the
    /// earlier ranks' in <paramref name="send"/>, and <paramref name="receive"/> holds, rank after rank, the
    /// <paramref name="receiveCounts"/>[s] values each rank s sent here. The counts (in values) must agree pairwise.
    /// </summary>
    public void AllToAll<T>(ReadOnlySpan<T> send, ReadOnlySpan<int> sendCounts, Span<T> receive, ReadOnlySpan<int> receiveCounts)
        where T : unmanaged
    {
        var (sendBytes, sendOffsets) = Layout(sendCounts, send.Length, sizeof(T), nameof(sendCounts));
        var (receiveBytes, receiveOffsets) = Layout(receiveCounts, receive.Length, sizeof(T), nameof(receiveCounts));
        fixed (T* s = send)
        fixed (T* r = receive)
        fixed (int* sc = sendBytes)
        fixed (int* so = sendOffsets)
        fixed (int* rc = receiveBytes)
        fixed (int* ro = receiveOffsets)
        {
            Check(MPI_Alltoallv(s, sc, so, _byte, r, rc, ro, _byte, _world), "MPI_Alltoallv");
        }
    }

    /// <summary>
    /// A communicator of the ranks that pass the same <paramref name="color"/>, ordered by <paramref name="key"/> (MPI_Comm_split);
    /// every rank of this communicator must call it.
    /// </summary>
    public Mpi Split(int color, int key)
    {
        IntPtr communicator = IntPtr.Zero; // MPICH writes a 32-bit handle into the low half
        Check(MPI_Comm_split(_world, color, key, &communicator), $"MPI_Comm_split (color {color})");
        return new Mpi(this, communicator);
    }

    /// <summary>Waits for every rank.</summary>
    public void Barrier() => Check(MPI_Barrier(_world), "MPI_Barrier");

    /// <summary>
    /// Ends every rank of the job now (MPI_Abort): the way a rank that failed makes the others stop instead of waiting forever
    /// for a message it will never send. Does not return.
    /// </summary>
    public void Abort(int code) => MPI_Abort(_world, code);

    /// <summary>
    /// Runs <paramref name="body"/> and, if it throws, writes "rank N failed: …" to stderr and aborts the whole job, so the
    /// other ranks exit within mpirun's teardown time instead of hanging in a receive.
    /// </summary>
    public int RunOrAbort(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine($"rank {Rank} of {Size} failed: {ex.GetType().Name}: {ex.Message}");
            Console.Error.Flush();
            Abort(3);
            return 3;
        }
    }

    /// <summary>
    /// Start-up check that every rank agrees on <paramref name="fingerprint"/> (a hash of the model and the schedule): throws,
    /// naming the ranks that differ from rank 0, when they do not.
    /// </summary>
    public void RequireSameOnAllRanks(long fingerprint, string what)
    {
        var all = AllGather(fingerprint);
        var different = Enumerable.Range(0, Size).Where(r => all[r] != all[0]).ToList();
        if (different.Count > 0)
        {
            throw new InvalidOperationException($"ranks disagree on the {what}: rank 0 has {all[0]:x16}, " + string.Join(", ", different.Select(r => $"rank {r} has {all[r]:x16}")));
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_finalized) return;
        _finalized = true;
        if (_parent is null)
        {
            MPI_Finalize();
        }
        else
        {
            IntPtr communicator = _world;
            MPI_Comm_free(&communicator);
        }
    }

    /// <summary>Counts in values → counts and offsets in bytes, checked against the buffer and MPI's 32-bit counts.</summary>
    private (int[] Bytes, int[] Offsets) Layout(ReadOnlySpan<int> counts, int available, int size, string name)
    {
        if (counts.Length != Size) throw new ArgumentException($"one count per rank: {Size}, not {counts.Length}", name);
        var bytes = new int[Size];
        var offsets = new int[Size];
        long offset = 0;
        for (int r = 0; r < Size; r++)
        {
            if (counts[r] < 0) throw new ArgumentException($"{name}[{r}] = {counts[r]} is negative", name);
            offsets[r] = checked((int)(offset * size));
            bytes[r] = checked(counts[r] * size);
            offset += counts[r];
        }

        if (offset > available) throw new ArgumentException($"the {name} add up to {offset} values; the buffer holds {available}", name);
        _ = checked((int)(offset * size)); // MPI counts bytes in an int
        return (bytes, offsets);
    }

    private IntPtr Export(string name) => NativeLibrary.GetExport(NativeLibraries.MpiHandle, name);

    private void Check(int code, string call)
    {
        if (code == 0) return;
        var text = new byte[1024];
        int length = 0;
        fixed (byte* p = text) MPI_Error_string(code, p, &length);
        throw new MpiException($"{call} failed on rank {Rank}: {System.Text.Encoding.ASCII.GetString(text, 0, length)} (error {code})");
    }

    [LibraryImport(Library)] private static partial int MPI_Init_thread(int* argc, byte*** argv, int required, out int provided);
    [LibraryImport(Library)] private static partial int MPI_Finalize();
    [LibraryImport(Library)] private static partial int MPI_Comm_rank(IntPtr comm, out int rank);
    [LibraryImport(Library)] private static partial int MPI_Comm_size(IntPtr comm, out int size);
    [LibraryImport(Library)] private static partial int MPI_Get_library_version(byte* version, out int length);
    [LibraryImport(Library)] private static partial int MPI_Error_string(int code, byte* text, int* length);
    [LibraryImport(Library)] private static partial int MPI_Send(void* buffer, int count, IntPtr type, int destination, int tag, IntPtr comm);
    [LibraryImport(Library)] private static partial int MPI_Recv(void* buffer, int count, IntPtr type, int source, int tag, IntPtr comm, IntPtr status);
    [LibraryImport(Library)] private static partial int MPI_Isend(void* buffer, int count, IntPtr type, int destination, int tag, IntPtr comm, IntPtr* request);
    [LibraryImport(Library)] private static partial int MPI_Wait(IntPtr* request, IntPtr status);
    [LibraryImport(Library)] private static partial int MPI_Allreduce(void* send, void* receive, int count, IntPtr type, IntPtr op, IntPtr comm);
    [LibraryImport(Library)] private static partial int MPI_Allgather(void* send, int sendCount, IntPtr sendType, void* receive, int receiveCount, IntPtr receiveType, IntPtr comm);
    [LibraryImport(Library)] private static partial int MPI_Bcast(void* buffer, int count, IntPtr type, int root, IntPtr comm);
    [LibraryImport(Library)] private static partial int MPI_Barrier(IntPtr comm);
    [LibraryImport(Library)] private static partial int MPI_Alltoall(void* send, int sendCount, IntPtr sendType, void* receive, int receiveCount, IntPtr receiveType, IntPtr comm);
    [LibraryImport(Library)] private static partial int MPI_Alltoallv(void* send, int* sendCounts, int* sendOffsets, IntPtr sendType, void* receive, int* receiveCounts, int* receiveOffsets, IntPtr receiveType, IntPtr comm);
    [LibraryImport(Library)] private static partial int MPI_Comm_split(IntPtr comm, int color, int key, IntPtr* newComm);
    [LibraryImport(Library)] private static partial int MPI_Comm_free(IntPtr* comm);
    [LibraryImport(Library)] private static partial int MPI_Abort(IntPtr comm, int code);
}
