using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Gpu;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Gpu;

/// <summary>
/// Moves TorchSharp CPU tensors to device buffers for the generated kernels and back. FP32 and integer tensors travel as
/// their values; BF16 tensors as their raw 16-bit patterns (what the kernels take as <c>ArrayView&lt;ushort&gt;</c>); E4M3
/// codes as bytes. Shapes are the caller's to keep: buffers are flat, row-major.
/// </summary>
public static class TensorTransfer
{
    /// <summary>An FP32 buffer holding <paramref name="tensor"/> (converted to FP32 first if needed).</summary>
    public static MemoryBuffer1D<float, Stride1D.Dense> ToDevice(GpuDevice device, Tensor tensor)
    {
        using var values = tensor.to(ScalarType.Float32).contiguous();
        return device.Accelerator.Allocate1D(values.data<float>().ToArray());
    }

    /// <summary>A buffer of the raw bf16 patterns of <paramref name="tensor"/> (rounded to bf16 first, nearest even, if it is not bf16).</summary>
    public static MemoryBuffer1D<ushort, Stride1D.Dense> ToDeviceBf16(GpuDevice device, Tensor tensor)
    {
        using var bf16 = tensor.to(ScalarType.BFloat16).contiguous();
        return device.Accelerator.Allocate1D(MemoryMarshal.Cast<byte, ushort>(bf16.bytes).ToArray());
    }

    /// <summary>An int32 buffer of <paramref name="tensor"/>'s values (ids, lengths, positions); throws when a value does not fit.</summary>
    public static MemoryBuffer1D<int, Stride1D.Dense> ToDeviceInt32(GpuDevice device, Tensor tensor)
    {
        using var values = tensor.to(ScalarType.Int64).contiguous();
        return device.Accelerator.Allocate1D(values.data<long>().ToArray().Select(v => checked((int)v)).ToArray());
    }

    /// <summary>A byte buffer of a U8 tensor (E4M3 codes as the checkpoint reader keeps them).</summary>
    public static MemoryBuffer1D<byte, Stride1D.Dense> ToDeviceBytes(GpuDevice device, Tensor tensor)
    {
        if (tensor.dtype != ScalarType.Byte) throw new ArgumentException($"expected a U8 tensor of E4M3 codes, got {tensor.dtype}", nameof(tensor));
        using var values = tensor.contiguous();
        return device.Accelerator.Allocate1D(values.data<byte>().ToArray());
    }

    /// <summary>The buffer's values as an FP32 tensor of <paramref name="shape"/>.</summary>
    public static Tensor ToTensor(MemoryBuffer1D<float, Stride1D.Dense> buffer, params long[] shape) => CheckedView(tensor(buffer.GetAsArray1D()), shape);

    /// <summary>bf16 patterns as a BF16 tensor of <paramref name="shape"/>.</summary>
    public static Tensor ToTensorBf16(MemoryBuffer1D<ushort, Stride1D.Dense> buffer, params long[] shape)
    {
        var bits = buffer.GetAsArray1D();
        var result = empty(bits.LongLength, ScalarType.BFloat16);
        result.bytes = MemoryMarshal.AsBytes(bits.AsSpan());
        return CheckedView(result, shape);
    }

    /// <summary>int32 values as an Int64 tensor of <paramref name="shape"/> (TorchSharp's index type).</summary>
    public static Tensor ToTensor(MemoryBuffer1D<int, Stride1D.Dense> buffer, params long[] shape) =>
        CheckedView(tensor(buffer.GetAsArray1D()).to(ScalarType.Int64), shape);

    /// <summary>Bytes (E4M3 codes) as a U8 tensor of <paramref name="shape"/>.</summary>
    public static Tensor ToTensor(MemoryBuffer1D<byte, Stride1D.Dense> buffer, params long[] shape) => CheckedView(tensor(buffer.GetAsArray1D()), shape);

    private static Tensor CheckedView(Tensor flat, long[] shape)
    {
        long elements = shape.Aggregate(1L, (a, b) => a * b);
        if (elements != flat.numel())
        {
            throw new ArgumentException($"a buffer of {flat.numel()} values cannot be viewed as [{string.Join(", ", shape)}] ({elements} values)", nameof(shape));
        }

        return flat.view(shape);
    }
}
