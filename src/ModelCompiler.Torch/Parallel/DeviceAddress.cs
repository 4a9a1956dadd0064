using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Parallel;

/// <summary>Where a PyTorch tensor's values are in device memory, for libraries that take raw addresses (NCCL).</summary>
internal static class DeviceAddress
{
    /// <summary>The device address of a contiguous float tensor's first element.</summary>
    public static IntPtr Of(Tensor values)
    {
        if (!values.is_contiguous() || values.dtype != ScalarType.Float32) throw new ArgumentException("NCCL carries contiguous float32 tensors", nameof(values));
        return THSStorage_data_ptr(values.Handle) + (nint)(values.storage_offset() * sizeof(float));
    }

    [DllImport("LibTorchSharp")] private static extern IntPtr THSStorage_data_ptr(IntPtr tensor); // TorchSharp's own shim: the storage's base address
}
