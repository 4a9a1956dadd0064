using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Torch.Gpu;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompiler.Gpu.Tests;

/// <summary>One OpenCL device (PoCL in CI) for a test class; build.sh installs PoCL, so its absence is a failure, not a skip.</summary>
public sealed class OpenClDevice : IDisposable
{
    public OpenClDevice() => Device = GpuDevice.Create(GpuBackend.OpenCL);

    public GpuDevice Device { get; }

    public void Dispose() => Device.Dispose();
}

/// <summary>ILGPU's CPU simulator (warp 32): runs the warp-shuffle variants, slowly, so on a few rows only.</summary>
public sealed class SimulatorDevice : IDisposable
{
    public SimulatorDevice() => Device = GpuDevice.Create(GpuBackend.Cpu);

    public GpuDevice Device { get; }

    public void Dispose() => Device.Dispose();
}

/// <summary>Moving test data between TorchSharp tensors and device buffers.</summary>
internal static class Data
{
    public static MemoryBuffer1D<float, Stride1D.Dense> Upload(GpuDevice device, Tensor tensor) => TensorTransfer.ToDevice(device, tensor);

    public static MemoryBuffer1D<int, Stride1D.Dense> UploadInts(GpuDevice device, Tensor tensor) => TensorTransfer.ToDeviceInt32(device, tensor);

    /// <summary>Uploads bf16 bits of <paramref name="tensor"/> (rounded to nearest even).</summary>
    public static MemoryBuffer1D<ushort, Stride1D.Dense> UploadBf16(GpuDevice device, Tensor tensor) => TensorTransfer.ToDeviceBf16(device, tensor);

    /// <summary>The tensor rounded to bf16 and back, the values a bf16 kernel sees.</summary>
    public static Tensor RoundBf16(Tensor tensor) => tensor.to(ScalarType.BFloat16).to(ScalarType.Float32);

    /// <summary>A buffer filled with NaN, so that an element the kernel forgets shows up.</summary>
    public static MemoryBuffer1D<float, Stride1D.Dense> Poisoned(GpuDevice device, long length) =>
        device.Accelerator.Allocate1D(Enumerable.Repeat(float.NaN, checked((int)length)).ToArray());

    public static Tensor Download(MemoryBuffer1D<float, Stride1D.Dense> buffer, params long[] shape) => TensorTransfer.ToTensor(buffer, shape);

    public static Tensor DownloadInts(MemoryBuffer1D<int, Stride1D.Dense> buffer, params long[] shape) => TensorTransfer.ToTensor(buffer, shape);

    /// <summary>E4M3 codes as their FP32 values (the checkpoint reader's decoder, an independent implementation).</summary>
    public static Tensor DownloadE4M3(MemoryBuffer1D<byte, Stride1D.Dense> buffer, params long[] shape) =>
        ModelCompiler.Torch.Checkpoints.Fp8.DecodeE4M3(TensorTransfer.ToTensor(buffer, shape));

    /// <summary>‖a − b‖ / ‖b‖.</summary>
    public static double RelativeError(Tensor actual, Tensor expected) =>
        (actual.to(ScalarType.Float64) - expected.to(ScalarType.Float64)).norm().item<double>() / expected.to(ScalarType.Float64).norm().item<double>();

    /// <summary>A generator seeded from the clock: fresh inputs every run; the seed is in the failure message.</summary>
    public static (Generator Generator, long Seed) Fresh()
    {
        long seed = Environment.TickCount64;
        return (new Generator((ulong)seed), seed);
    }
}
