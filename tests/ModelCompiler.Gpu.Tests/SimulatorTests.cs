using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Torch;
using ModelCompiler.Torch.Layers;
using Samples.DeepSeekV3;
using Samples.TinySeek;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Gpu.Tests;

/// <summary>
/// The warp-shuffle variants (what CUDA runs) on ILGPU's CPU simulator, which has 32-lane warps and real shuffles but runs
/// one OS thread per GPU thread: a few rows each. The inline-PTX branches take their managed side here; the PTX itself is
/// checked by the snapshots and on the GPU by the benchmark.
/// </summary>
public sealed class SimulatorTests(SimulatorDevice fixture) : IClassFixture<SimulatorDevice>
{
    private readonly GpuDevice _device = fixture.Device;

    [Fact]
    public void Device_takes_the_shuffle_variants() => Assert.True(_device.HasWarpShuffles);

    [Theory]
    [InlineData("TinySeek", 64)]
    [InlineData("DeepSeekV3", 512)]
    public void RmsNorm_with_shuffles_matches_the_layer(string model, int width)
    {
        var (generator, seed) = Data.Fresh();
        const int rows = 3;
        var x = randn([rows, width], generator: generator);
        using var layer = new RmsNorm(width, 1e-6);
        using (no_grad()) layer.Weight.copy_(rand([width], generator: generator).Plus(0.5));
        using var xs = Data.Upload(_device, x);
        using var weight = Data.Upload(_device, layer.Weight);
        using var y = Data.Poisoned(_device, rows * width);
        if (model == "TinySeek") new TinySeek.Kernels.Launcher(_device).RmsNormHidden(xs.View, weight.View, y.View);
        else new DeepSeekV3.Kernels.Launcher(_device).RmsNormKeyValueLatent(xs.View, weight.View, y.View);
        Checks.Close(Data.Download(y, rows, width), layer.call(x).detach(), 1e-5, $"{model} RMSNorm (shuffles)", seed);
    }

    [Fact]
    public void RmsNorm_fused_quantisation_with_shuffles_matches_the_reference()
    {
        var (generator, seed) = Data.Fresh();
        const int rows = 2, width = 7168;
        var x = randn([rows, width], generator: generator);
        using var layer = new RmsNorm(width, 1e-6);
        using (no_grad()) layer.Weight.copy_(rand([width], generator: generator).Plus(0.5));
        using var xs = Data.Upload(_device, x);
        using var weight = Data.Upload(_device, layer.Weight);
        using var codes = _device.Accelerator.Allocate1D<byte>(rows * width);
        using var scales = Data.Poisoned(_device, rows * width / 128);
        new DeepSeekV3.Kernels.Launcher(_device).RmsNormQuantHidden(xs.View, weight.View, codes.View, scales.View);
        Checks.Quantized(codes, scales, layer.call(x).detach(), 128, "RmsNormQuantHidden (shuffles)", seed);
    }

    [Fact]
    public void Act_quant_with_shuffles_matches_the_reference()
    {
        var (generator, seed) = Data.Fresh();
        const int rows = 1, width = 7168;
        var x = Data.RoundBf16(randn([rows, width], generator: generator).Times(5));
        using var xs = Data.UploadBf16(_device, x);
        using var codes = _device.Accelerator.Allocate1D<byte>(rows * width);
        using var scales = Data.Poisoned(_device, rows * width / 128);
        new DeepSeekV3.Kernels.Launcher(_device).ActQuantHidden(xs.View, codes.View, scales.View);
        Checks.Quantized(codes, scales, x, 128, "ActQuantHidden (shuffles)", seed);
    }

    [Theory]
    [InlineData("DeepSeekV3")]
    [InlineData("V2Style")]
    [InlineData("TinySeek")]
    public void Router_with_shuffles_matches_the_gate(string model)
    {
        var (generator, seed) = Data.Fresh();
        Routes.Check(_device, KernelTests.LauncherFor(_device, model), KernelTests.ModelSpecOf(model).Moe!, 6, generator, seed, model + " (shuffles)");
    }
}
