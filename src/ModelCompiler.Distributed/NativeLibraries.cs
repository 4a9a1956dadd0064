using System.Reflection;
using System.Runtime.InteropServices;

namespace ModelCompiler.Distributed;

/// <summary>
/// Resolves the logical library names of this assembly's P/Invokes in one place (.NET allows one resolver per assembly):
/// "mpi" → $MPI_LIB, else Open MPI's libmpi.so.40, else MPICH's libmpich.so.12; "nccl" → $NCCL_LIB, else libnccl.so.2.
/// </summary>
internal static class NativeLibraries
{
    private static readonly Lazy<bool> s_resolver = new(() =>
    {
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);
        return true;
    });

    internal static IntPtr MpiHandle;

    /// <summary>Installs the resolver; the bindings' static constructors call it before their first P/Invoke.</summary>
    internal static void EnsureResolver() => _ = s_resolver.Value;

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path) => name switch
    {
        "mpi" => MpiHandle != IntPtr.Zero ? MpiHandle : MpiHandle = LoadFirst("MPI", Environment.GetEnvironmentVariable("MPI_LIB"), "libmpi.so.40", "libmpich.so.12", "libmpi.so.12"),
        "nccl" => LoadFirst("NCCL", Environment.GetEnvironmentVariable("NCCL_LIB"), "libnccl.so.2"),
        _ => IntPtr.Zero,
    };

    private static IntPtr LoadFirst(string what, params string?[] candidates)
    {
        foreach (string? candidate in candidates)
        {
            if (candidate is not null && NativeLibrary.TryLoad(candidate, out IntPtr handle)) return handle;
        }

        throw new DllNotFoundException($"No {what} library found (tried {string.Join(", ", candidates.Where(c => c is not null))}); "
            + (what == "MPI" ? "install Open MPI (apt-get install openmpi-bin) or set MPI_LIB." : "set NCCL_LIB to libnccl.so.2 (PyTorch's nvidia/nccl/lib has one)."));
    }
}
