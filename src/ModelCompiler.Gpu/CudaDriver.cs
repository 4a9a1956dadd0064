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

/// <summary>
/// Tensor maps for Hopper's bulk tensor copies (TMA, <c>cp.async.bulk.tensor</c>): the 128-byte descriptor the copy engine
/// reads from global memory, encoded by the driver.
/// </summary>
public static unsafe partial class TensorMap
{
    /// <summary>Bytes of one encoded map (CUtensorMap); kernels read it from a 64-byte aligned device address.</summary>
    public const int Bytes = 128;

    private const int DataTypeUInt8 = 0;       // CU_TENSOR_MAP_DATA_TYPE_UINT8: E4M3 codes moved as raw bytes
    private const int DataTypeUInt16 = 1;      // CU_TENSOR_MAP_DATA_TYPE_UINT16: bf16 moved as raw 16-bit values
    private const int L2Promotion128B = 2;     // CU_TENSOR_MAP_L2_PROMOTION_L2_128B
    private const int Swizzle128B = 3;         // CU_TENSOR_MAP_SWIZZLE_128B

    [LibraryImport("libcuda.so.1")]
    private static partial int cuTensorMapEncodeTiled(void* tensorMap, int dataType, uint rank, nint globalAddress, ulong* globalDim,
        ulong* globalStrides, uint* boxDim, uint* elementStrides, int interleave, int swizzle, int l2Promotion, int oobFill);

    /// <summary>
    /// A map of a row-major matrix of 16-bit values (or bytes, with <paramref name="elementBytes"/> 1; <paramref name="rows"/> ×
    /// <paramref name="width"/>, rows <paramref name="rowBytes"/> apart) copied in boxes of <paramref name="boxRows"/> rows ×
    /// <paramref name="boxWidth"/> values: a box lands in shared memory row after row, with <paramref name="swizzle128"/>
    /// (boxes 128 bytes wide) its 16-byte pieces permuted within each 1024-byte group of 8 rows as warp-group MMA reads them.
    /// Rows past the matrix arrive as zeros.
    /// </summary>
    public static byte[] Tiled2D(long address, long width, long rows, long rowBytes, int boxWidth, int boxRows, bool swizzle128 = false, int elementBytes = 2)
    {
        if (address % 16 != 0 || rowBytes % 16 != 0) throw new ArgumentException($"A tensor map needs 16-byte aligned rows (address {address}, row stride {rowBytes} bytes).");
        int dataType = elementBytes switch
        {
            1 => DataTypeUInt8,
            2 => DataTypeUInt16,
            _ => throw new ArgumentOutOfRangeException(nameof(elementBytes), elementBytes, "Tensor maps here move 1- or 2-byte values."),
        };
        var map = NativeMemory.AlignedAlloc(Bytes, 64);
        try
        {
            ulong* dims = stackalloc ulong[] { (ulong)width, (ulong)rows };
            ulong* strides = stackalloc ulong[] { (ulong)rowBytes };
            uint* box = stackalloc uint[] { (uint)boxWidth, (uint)boxRows };
            uint* elementStrides = stackalloc uint[] { 1, 1 };
            int status = cuTensorMapEncodeTiled(map, dataType, 2, (nint)address, dims, strides, box, elementStrides, 0, swizzle128 ? Swizzle128B : 0, L2Promotion128B, 0);
            if (status != 0)
            {
                throw new InvalidOperationException($"cuTensorMapEncodeTiled failed with CUDA error {status} ({rows} rows × {width} values, {rowBytes}-byte rows, box {boxRows} × {boxWidth}).");
            }

            return new ReadOnlySpan<byte>(map, Bytes).ToArray();
        }
        finally
        {
            NativeMemory.AlignedFree(map);
        }
    }
}
