using static TorchSharp.torch;

namespace ModelCompiler.Torch;

/// <summary>
/// Runs a forward step too small to share on one intra-op thread: a product over at most <see cref="MaxValues"/> input
/// values (rows × width) is done before a second thread has woken. Measured on the project's 2-core machine
/// (docs/performance.md): a linear over 2 rows of width 64 takes 3 µs on one thread and 13 µs on two, over 4 rows of width
/// 1024 0.42 ms against 0.54 ms; at 16 rows of width 512 two threads win. Decoding one token per step (a single row of
/// input) already runs on one thread inside the library (a matrix-vector product); two rows, such as a self-speculative
/// checking pass, would otherwise pay the wake-up in every linear layer. The thread count is process-wide: decoding that
/// enters a SmallStep must not run beside other TorchSharp work on other threads.
/// </summary>
public readonly struct SmallStep : IDisposable
{
    /// <summary>Largest rows × width that runs on one thread.</summary>
    public const long MaxValues = 4096;

    private readonly int _restore;

    private SmallStep(int restore) => _restore = restore;

    /// <summary>Limits intra-op threads to one until disposed when <paramref name="rows"/> × <paramref name="width"/> is small.</summary>
    public static SmallStep Enter(long rows, long width)
    {
        if (rows * width > MaxValues) return default;
        int threads = get_num_threads();
        if (threads <= 1) return default;
        set_num_threads(1);
        return new SmallStep(threads);
    }

    /// <summary>Restores the thread count it found.</summary>
    public void Dispose()
    {
        if (_restore > 0) set_num_threads(_restore);
    }
}
