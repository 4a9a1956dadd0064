using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace ModelCompiler.Gpu;

/// <summary>
/// cuBLAS 13 for the GEMMs between fused kernels (ILGPU's own wrapper loads only libcublas.so.10–12). Row-major
/// <c>C[m, n] = A[m, k] · B[n, k]ᵀ</c>, the layout of a linear layer's weight, with FP32 accumulation; inputs FP32 or BF16.
/// cuBLAS is column-major, so the call computes <c>Cᵀ = B · Aᵀ</c>: B as the transposed left operand, A as the right one.
/// </summary>
public sealed partial class CuBlas : IDisposable
{
    private const string Library = "libcublas.so.13";
    private const int OpTranspose = 1, OpNone = 0;
    private const int DataR32F = 0, DataR16BF = 14;
    private const int ComputeR32F = 68;           // CUBLAS_COMPUTE_32F
    private const int DefaultTensorOpAlgorithm = 99; // CUBLAS_GEMM_DEFAULT_TENSOR_OP
    private IntPtr _handle;

    /// <summary>Creates a handle bound to <paramref name="stream"/>.</summary>
    public CuBlas(AcceleratorStream stream)
    {
        Check(cublasCreate_v2(out _handle), "cublasCreate");
        Check(cublasSetStream_v2(_handle, ((CudaStream)stream).StreamPtr), "cublasSetStream");
    }

    /// <summary>C[m, n] = A[m, k] · B[n, k]ᵀ in FP32.</summary>
    public void Gemm(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, int m, int n, int k) =>
        GemmEx(a.LoadEffectiveAddressAsPtr(), b.LoadEffectiveAddressAsPtr(), c.LoadEffectiveAddressAsPtr(), m, n, k, DataR32F, DataR32F);

    /// <summary>C[m, n] = A[m, k] · B[n, k]ᵀ with BF16 inputs (as raw 16-bit values) and an FP32 result.</summary>
    public void GemmBf16(ArrayView<ushort> a, ArrayView<ushort> b, ArrayView<float> c, int m, int n, int k) =>
        GemmEx(a.LoadEffectiveAddressAsPtr(), b.LoadEffectiveAddressAsPtr(), c.LoadEffectiveAddressAsPtr(), m, n, k, DataR16BF, DataR32F);

    /// <summary>
    /// For each of <paramref name="batch"/> matrices, row-major C_b[m, n] = A_b[m, k] · B_b (B_b [k, n]), or · B_bᵀ (B_b [n, k])
    /// when <paramref name="transposeB"/>; each operand given by its address, row stride and the stride between batches, in
    /// elements. Inputs both FP32 or both bf16; C is FP32; FP32 accumulation.
    /// </summary>
    public unsafe void GemmStridedBatched(bool bf16, IntPtr a, int lda, long strideA, IntPtr b, int ldb, long strideB, bool transposeB, IntPtr c, int ldc, long strideC,
        int m, int n, int k, int batch)
    {
        // Column-major: Cᵀ[n, m] = op(B)ᵀ[n, k] · Aᵀ[k, m]; a row-major matrix is its transpose in column-major.
        float alpha = 1f, beta = 0f;
        int type = bf16 ? DataR16BF : DataR32F;
        Check(cublasGemmStridedBatchedEx(_handle, transposeB ? OpTranspose : OpNone, OpNone, n, m, k, &alpha, b, type, ldb, strideB, a, type, lda, strideA, &beta,
            c, DataR32F, ldc, strideC, batch, ComputeR32F, DefaultTensorOpAlgorithm), $"cublasGemmStridedBatchedEx(m={m}, n={n}, k={k}, batch={batch})");
    }

    private unsafe void GemmEx(IntPtr a, IntPtr b, IntPtr c, int m, int n, int k, int inputType, int outputType)
    {
        float alpha = 1f, beta = 0f;
        Check(cublasGemmEx(_handle, OpTranspose, OpNone, n, m, k, &alpha, b, inputType, k, a, inputType, k, &beta, c, outputType, n, ComputeR32F, DefaultTensorOpAlgorithm),
            $"cublasGemmEx(m={m}, n={n}, k={k})");
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_handle != IntPtr.Zero) cublasDestroy_v2(_handle);
        _handle = IntPtr.Zero;
    }

    private static void Check(int status, string call)
    {
        if (status != 0) throw new InvalidOperationException($"{call} failed with cuBLAS status {status}.");
    }

    [LibraryImport(Library)]
    private static partial int cublasCreate_v2(out IntPtr handle);

    [LibraryImport(Library)]
    private static partial int cublasDestroy_v2(IntPtr handle);

    [LibraryImport(Library)]
    private static partial int cublasSetStream_v2(IntPtr handle, IntPtr stream);

    [LibraryImport(Library)]
    private static unsafe partial int cublasGemmStridedBatchedEx(IntPtr handle, int transa, int transb, int m, int n, int k, float* alpha, IntPtr a, int aType, int lda,
        long strideA, IntPtr b, int bType, int ldb, long strideB, float* beta, IntPtr c, int cType, int ldc, long strideC, int batchCount, int computeType, int algo);

    [LibraryImport(Library)]
    private static unsafe partial int cublasGemmEx(IntPtr handle, int transa, int transb, int m, int n, int k, float* alpha,
        IntPtr a, int aType, int lda, IntPtr b, int bType, int ldb, float* beta, IntPtr c, int cType, int ldc, int computeType, int algo);
}
