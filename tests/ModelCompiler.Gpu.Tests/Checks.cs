using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Torch;
using ModelCompiler.Torch.Layers;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Gpu.Tests;

/// <summary>Assertions shared by the kernel tests.</summary>
internal static class Checks
{
    public static void Close(Tensor actual, Tensor expected, double tolerance, string what, long seed)
    {
        Assert.False(actual.isnan().any().item<bool>(), $"{what}: NaN in the kernel's output (seed {seed})");
        double error = Data.RelativeError(actual, expected);
        Assert.True(error <= tolerance, $"{what}: ‖out − ref‖/‖ref‖ = {error:E3} > {tolerance:E1} (seed {seed})");
    }

    /// <summary>
    /// FP8 output against <see cref="Fp8Quantization"/> on the same FP32 values: the scales agree to FP32 rounding, and the codes
    /// agree except where the kernel's and the reference's last-bit differences put a value on the other side of a rounding
    /// tie — rare, and then one E4M3 step apart.
    /// </summary>
    public static void Quantized(MemoryBuffer1D<byte, Stride1D.Dense> codes, MemoryBuffer1D<float, Stride1D.Dense> scales, Tensor values, int tile, string what, long seed)
    {
        long rows = values.shape[0], width = values.shape[1];
        var decoded = Data.DownloadE4M3(codes, rows, width);
        var scale = Data.Download(scales, rows, width / tile);
        var expectedScale = values.view(rows, width / tile, tile).abs().amax([-1L]).clamp_min(KeptScalars.Of(Fp8Quantization.AmaxFloor)) / KeptScalars.Of(Fp8Quantization.Max);
        Close(scale, expectedScale, 1e-5, what + " scales", seed);

        var ours = decoded * scale.repeat_interleave(tile, 1);
        var expected = Fp8Quantization.QuantizeDequantizeActivations(values, tile);
        Assert.False(ours.isnan().any().item<bool>(), $"{what}: NaN codes (seed {seed})");
        // One E4M3 step: at most 1/8 of the value in a normal binade, 2^-9 · scale among subnormals.
        var step = expected.abs().Times(0.125).Plus(scale.repeat_interleave(tile, 1) / KeptScalars.OfInteger(512)).Plus(1e-12);
        var differs = (ours - expected).abs() > expected.abs().Times(1e-6).Plus(1e-12);
        double share = differs.to(ScalarType.Float64).mean().item<double>();
        Assert.True(share < 0.002, $"{what}: {share:P3} of the codes differ from the reference (seed {seed})");
        Assert.True(((ours - expected).abs() <= step).all().item<bool>(), $"{what}: a code is more than one E4M3 step off (seed {seed})");
    }
}
