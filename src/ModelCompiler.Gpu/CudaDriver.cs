using System.Runtime.InteropServices;
using ILGPU.Runtime.Cuda;

namespace ModelCompiler.Gpu;

/// <summary>The driver calls ILGPU 1.5.3 does not make (its own binding has no cuFuncSetAttribute).</summary>
internal static partial class CudaDriver
{
    private const int MaxDynamicSharedSizeBytes = 8; // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES

    [LibraryImport("libcuda.so.1")]
    private static partial int cuFuncSetAttribute(IntPtr function, int attribute, int value);

    /// <summary>Lets <paramref name="kernel"/> launch with more than the default 48 KB of dynamic shared memory.</summary>
    public static void AllowDynamicSharedMemory(CudaKernel kernel, int bytes)
    {
        int status = cuFuncSetAttribute(kernel.FunctionPtr, MaxDynamicSharedSizeBytes, bytes);
        if (status != 0)
        {
            throw new InvalidOperationException($"cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES, {bytes}) failed with CUDA error {status} for kernel {kernel.CompiledKernel.Name}.");
        }
    }
}
