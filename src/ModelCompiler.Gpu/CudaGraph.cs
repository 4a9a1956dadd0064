using System.Runtime.InteropServices;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace ModelCompiler.Gpu;

/// <summary>
/// A CUDA graph made by capturing what a stream is given (kernel launches, cuBLAS calls, async memsets), then replayed with
/// one launch: the host's per-launch cost paid once at capture instead of on every replay. The captured work reads and writes
/// the same device addresses on every replay, so buffers must not move between replays. ILGPU 1.5.3 has no graph API: these
/// are the driver's calls.
/// </summary>
public sealed partial class CudaGraph : IDisposable
{
    private const int CaptureModeRelaxed = 2; // CU_STREAM_CAPTURE_MODE_RELAXED: other threads' CUDA calls stay legal
    private IntPtr _graph;
    private IntPtr _exec;

    private CudaGraph(IntPtr graph, IntPtr exec)
    {
        _graph = graph;
        _exec = exec;
    }

    /// <summary>
    /// Captures what <paramref name="work"/> issues on <paramref name="stream"/> (a stream created for this, not the legacy
    /// default one, which cannot be captured) and instantiates it. Nothing runs on the device while capturing.
    /// </summary>
    /// <exception cref="InvalidOperationException">A driver call failed; the capture is ended and nothing is kept.</exception>
    public static CudaGraph Capture(AcceleratorStream stream, Action work)
    {
        IntPtr handle = ((CudaStream)stream).StreamPtr;
        Check(cuStreamBeginCapture_v2(handle, CaptureModeRelaxed), "cuStreamBeginCapture");
        IntPtr graph = IntPtr.Zero;
        try
        {
            work();
        }
        finally
        {
            int ended = cuStreamEndCapture(handle, out graph);
            if (ended != 0 && graph == IntPtr.Zero) Check(ended, "cuStreamEndCapture");
        }

        try
        {
            Check(cuGraphInstantiateWithFlags(out IntPtr exec, graph, 0), "cuGraphInstantiateWithFlags");
            return new CudaGraph(graph, exec);
        }
        catch
        {
            cuGraphDestroy(graph);
            throw;
        }
    }

    /// <summary>Replays the graph on <paramref name="stream"/>.</summary>
    public void Launch(AcceleratorStream stream) => Check(cuGraphLaunch(_exec, ((CudaStream)stream).StreamPtr), "cuGraphLaunch");

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_exec != IntPtr.Zero) cuGraphExecDestroy(_exec);
        if (_graph != IntPtr.Zero) cuGraphDestroy(_graph);
        _exec = _graph = IntPtr.Zero;
    }

    private static void Check(int status, string call)
    {
        if (status != 0) throw new InvalidOperationException($"{call} failed with CUDA error {status}");
    }

    [LibraryImport("libcuda.so.1")]
    private static partial int cuStreamBeginCapture_v2(IntPtr stream, int mode);

    [LibraryImport("libcuda.so.1")]
    private static partial int cuStreamEndCapture(IntPtr stream, out IntPtr graph);

    [LibraryImport("libcuda.so.1")]
    private static partial int cuGraphInstantiateWithFlags(out IntPtr exec, IntPtr graph, ulong flags);

    [LibraryImport("libcuda.so.1")]
    private static partial int cuGraphLaunch(IntPtr exec, IntPtr stream);

    [LibraryImport("libcuda.so.1")]
    private static partial int cuGraphExecDestroy(IntPtr exec);

    [LibraryImport("libcuda.so.1")]
    private static partial int cuGraphDestroy(IntPtr graph);
}
