using System.Runtime.InteropServices;

namespace ModelCompiler.Distributed;

/// <summary>A CUDA driver call that failed, with its result code.</summary>
public sealed class DriverStreamException(string message) : Exception(message);

/// <summary>
/// A CUDA stream of the context current on the calling thread (the primary context PyTorch's CUDA runtime made current),
/// created non-blocking so that it never waits for the legacy default stream — the one PyTorch computes on — nor that
/// stream for it. NCCL point-to-point calls go on such streams so that a send waiting for its peer does not hold up the
/// computation behind it. Through the driver API (libcuda.so.1), which every CUDA machine has.
/// </summary>
public sealed partial class DriverStream : IDisposable
{
    private const string Library = "libcuda.so.1";
    private const uint NonBlocking = 1;

    private DriverStream(IntPtr handle) => Handle = handle;

    /// <summary>The stream handle (CUstream) for NCCL.</summary>
    public IntPtr Handle { get; private set; }

    /// <summary>A new non-blocking stream in the current context.</summary>
    public static DriverStream Create()
    {
        Check(cuStreamCreate(out IntPtr handle, NonBlocking), "cuStreamCreate");
        return new DriverStream(handle);
    }

    /// <summary>Waits on the host until everything enqueued on the legacy default stream (PyTorch's computation) has run.</summary>
    public static void SynchronizeDefault() => Check(cuStreamSynchronize(IntPtr.Zero), "cuStreamSynchronize(default stream)");

    /// <summary>Waits on the host until everything enqueued on this stream has run.</summary>
    public void Synchronize() => Check(cuStreamSynchronize(Handle), "cuStreamSynchronize");

    /// <inheritdoc/>
    public void Dispose()
    {
        if (Handle == IntPtr.Zero) return;
        cuStreamDestroy_v2(Handle);
        Handle = IntPtr.Zero;
    }

    private static void Check(int result, string call)
    {
        if (result != 0) throw new DriverStreamException($"{call} failed: CUresult {result}");
    }

    [LibraryImport(Library)] private static partial int cuStreamCreate(out IntPtr stream, uint flags);
    [LibraryImport(Library)] private static partial int cuStreamSynchronize(IntPtr stream);
    [LibraryImport(Library)] private static partial int cuStreamDestroy_v2(IntPtr stream);
}
