using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Planning;
using ModelCompiler.Torch;
using ModelCompiler.Torch.Layers;
using Samples.DeepSeekV3;
using Samples.TinySeek;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Gpu.Tests;

/// <summary>
/// Every generated kernel on OpenCL (PoCL on the CPU in CI) against the TorchSharp layers, on fresh random inputs, at the
/// shapes of three declarations: DeepSeek-V3 (7168 wide, 256 experts in 8 groups, 128 heads), a V2-style model (softmax
/// routing without bias, 16 heads) and TinySeek (64 wide, a row shorter than a group, 8 experts).
/// </summary>
public sealed class KernelTests(OpenClDevice fixture) : IClassFixture<OpenClDevice>
{
    private readonly GpuDevice _device = fixture.Device;

    [Theory]
    [InlineData("DeepSeekV3", "Hidden", 7168)]
    [InlineData("DeepSeekV3", "QueryLatent", 1536)]
    [InlineData("DeepSeekV3", "KeyValueLatent", 512)]
    [InlineData("V2Style", "Hidden", 2048)]
    [InlineData("TinySeek", "Hidden", 64)]
    [InlineData("TinySeek", "QueryLatent", 48)]
    public void RmsNorm_matches_the_layer(string model, string norm, int width)
    {
        var (generator, seed) = Data.Fresh();
        const int rows = 5;
        var x = randn([rows, width], generator: generator).Times(3);
        using var layer = new RmsNorm(width, ModelSpecOf(model).RmsNormEpsilon);
        using (no_grad()) layer.Weight.copy_(rand([width], generator: generator).Plus(0.5));
        using var xs = Data.Upload(_device, x);
        using var weight = Data.Upload(_device, layer.Weight);
        using var y = Data.Poisoned(_device, rows * width);
        Launch(model, "RmsNorm" + norm, xs.View.BaseView, weight.View.BaseView, y.View.BaseView);
        Checks.Close(Data.Download(y, rows, width), layer.call(x).detach(), 1e-5, $"{model}.RmsNorm{norm}", seed);
    }

    [Theory]
    [InlineData("DeepSeekV3")]
    [InlineData("V2Style")]
    public void RmsNorm_fused_with_FP8_quantisation_matches_norm_then_act_quant(string model)
    {
        var (generator, seed) = Data.Fresh();
        int width = ModelSpecOf(model).HiddenSize;
        const int rows = 4;
        var x = randn([rows, width], generator: generator).Times(2);
        x[2] = zeros(width); // an all-zero row: floor scale, zero codes, no NaN
        using var layer = new RmsNorm(width, ModelSpecOf(model).RmsNormEpsilon);
        using (no_grad()) layer.Weight.copy_(rand([width], generator: generator).Plus(0.5));
        using var xs = Data.Upload(_device, x);
        using var weight = Data.Upload(_device, layer.Weight);
        using var codes = _device.Accelerator.Allocate1D<byte>(rows * width);
        using var scales = Data.Poisoned(_device, rows * width / 128);
        Launch(model, "RmsNormQuantHidden", xs.View.BaseView, weight.View.BaseView, codes.View.BaseView, scales.View.BaseView);
        Checks.Quantized(codes, scales, layer.call(x).detach(), 128, $"{model}.RmsNormQuantHidden", seed);
    }

    [Fact]
    public void The_FP8_GEMM_matches_block_scaled_dequantisation_and_checks_its_shapes()
    {
        var (generator, seed) = Data.Fresh();
        int m = 200, n = 256, k = 384; // a partial row tile, two weight blocks along n, three k-blocks
        var aCodes = randint(0, 256, [m, k], generator: generator, dtype: ScalarType.Byte);
        aCodes = aCodes.masked_fill((aCodes & 0x7F) == KeptScalars.OfInteger(0x7F), KeptScalars.OfInteger(0x38)); // no NaN codes
        var wCodes = randint(0, 256, [n, k], generator: generator, dtype: ScalarType.Byte);
        wCodes = wCodes.masked_fill((wCodes & 0x7F) == KeptScalars.OfInteger(0x7F), KeptScalars.OfInteger(0x38));
        var aScales = rand([m, k / 128], generator: generator).Times(0.01).Plus(1e-4);
        var wScales = rand([n / 128, k / 128], generator: generator).Times(0.01).Plus(1e-4);
        var a = ModelCompiler.Torch.Checkpoints.Fp8.DecodeE4M3(aCodes) * aScales.repeat_interleave(128, 1);
        var w = ModelCompiler.Torch.Checkpoints.Fp8.Dequantize(ModelCompiler.Torch.Checkpoints.Fp8.DecodeE4M3(wCodes), wScales, 128, "test.weight");
        var expected = a.to(ScalarType.Float64).matmul(w.to(ScalarType.Float64).t());

        var kernels = new DeepSeekV3.Kernels.Launcher(_device);
        using var aBuffer = _device.Accelerator.Allocate1D(aCodes.contiguous().data<byte>().ToArray());
        using var wBuffer = _device.Accelerator.Allocate1D(wCodes.contiguous().data<byte>().ToArray());
        using var aScaleBuffer = Data.Upload(_device, aScales);
        using var wScaleBuffer = Data.Upload(_device, wScales);
        using var c = Data.Poisoned(_device, m * n);
        kernels.Fp8Gemm(aBuffer.View, aScaleBuffer.View, wBuffer.View, wScaleBuffer.View, c.View, m, n, k);
        double error = Data.RelativeError(Data.Download(c, m, n), expected);
        Assert.True(error < 1e-5, $"relative error {error:E2} (seed {seed})");

        Assert.Equal("k", Assert.Throws<ArgumentOutOfRangeException>(() => kernels.Fp8Gemm(aBuffer.View, aScaleBuffer.View, wBuffer.View, wScaleBuffer.View, c.View, m, n, 320)).ParamName);
        Assert.Equal("n", Assert.Throws<ArgumentOutOfRangeException>(() => kernels.Fp8Gemm(aBuffer.View, aScaleBuffer.View, wBuffer.View, wScaleBuffer.View, c.View, m, 200, k)).ParamName);
        Assert.Contains("weightScales", Assert.Throws<ArgumentException>(() => kernels.Fp8Gemm(aBuffer.View, aScaleBuffer.View, wBuffer.View, aScaleBuffer.View, c.View, m, n, k)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Act_quant_matches_the_reference_on_bf16_rows()
    {
        var (generator, seed) = Data.Fresh();
        const int rows = 3, width = 7168;
        var x = Data.RoundBf16(randn([rows, width], generator: generator) * torch.logspace(-3, 2, width).view(1, width));
        x[1, TensorIndex.Slice(128, 256)] = zeros(128); // one all-zero tile
        using var xs = Data.UploadBf16(_device, x);
        using var codes = _device.Accelerator.Allocate1D<byte>(rows * width);
        using var scales = Data.Poisoned(_device, rows * width / 128);
        new DeepSeekV3.Kernels.Launcher(_device).ActQuantHidden(xs.View, codes.View, scales.View);
        Checks.Quantized(codes, scales, x, 128, "ActQuantHidden", seed);
    }

    [Fact]
    public void SwiGlu_and_its_fused_quantisation_match_the_reference()
    {
        var (generator, seed) = Data.Fresh();
        const int rows = 3, width = 2048;
        var a = randn([rows, width], generator: generator).Times(2);
        var b = randn([rows, width], generator: generator);
        var expected = nn.functional.silu(a) * b;
        using var av = Data.Upload(_device, a);
        using var bv = Data.Upload(_device, b);
        using var y = Data.Poisoned(_device, rows * width);
        using var codes = _device.Accelerator.Allocate1D<byte>(rows * width);
        using var scales = Data.Poisoned(_device, rows * width / 128);
        var launcher = new DeepSeekV3.Kernels.Launcher(_device);
        launcher.SwiGlu(av.View, bv.View, y.View);
        launcher.SwiGluQuantExpert(av.View, bv.View, codes.View, scales.View);
        Checks.Close(Data.Download(y, rows, width), expected, 1e-6, "SwiGlu", seed);
        Checks.Quantized(codes, scales, expected, 128, "SwiGluQuantExpert", seed);
    }

    [Theory]
    [InlineData(256, 512)]
    [InlineData(300, 7168)] // a partial row block
    [InlineData(130, 4100)] // partial blocks in both directions; a second group per row with one quad to do
    public void Weight_dequantisation_matches_the_checkpoint_reader(int rows, int columns)
    {
        var (generator, seed) = Data.Fresh();
        var bytes = randint(0, 256, [rows, columns], generator: generator, dtype: ScalarType.Byte);
        bytes = bytes.masked_fill((bytes & 0x7F) == KeptScalars.OfInteger(0x7F), KeptScalars.OfInteger(0x3C)); // no NaN codes
        var scaleInverse = rand([(rows + 127) / 128, (columns + 127) / 128], generator: generator).Times(0.01).Plus(1e-4);
        var expected = ModelCompiler.Torch.Checkpoints.Fp8.Dequantize(ModelCompiler.Torch.Checkpoints.Fp8.DecodeE4M3(bytes), scaleInverse, 128, "test.weight");
        using var codes = _device.Accelerator.Allocate1D(bytes.contiguous().data<byte>().ToArray());
        using var scales = Data.Upload(_device, scaleInverse);
        using var weight = Data.Poisoned(_device, rows * columns);
        new DeepSeekV3.Kernels.Launcher(_device).DequantizeWeight(codes.View, scales.View, weight.View, rows, columns);
        Assert.True(Data.Download(weight, rows, columns).eq(expected).all().item<bool>(), $"dequantised weights differ (seed {seed})");
    }

    [Fact]
    public void Weight_dequantisation_refuses_columns_that_are_not_whole_quads()
    {
        using var codes = _device.Accelerator.Allocate1D<byte>(4 * 42);
        using var scales = _device.Accelerator.Allocate1D<float>(1);
        using var weight = _device.Accelerator.Allocate1D<float>(4 * 42);
        var error = Assert.Throws<ArgumentException>(() => new DeepSeekV3.Kernels.Launcher(_device).DequantizeWeight(codes.View, scales.View, weight.View, 4, 42));
        Assert.Contains("42 columns are not a multiple of 4", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("DeepSeekV3")] // two pairs per thread, 16-byte accesses
    [InlineData("PairRope")] // rows off 16 bytes: one pair per thread
    public void Rotary_embedding_matches_the_layer_with_YaRN(string model)
    {
        var (generator, seed) = Data.Fresh();
        var spec = model == "DeepSeekV3" ? DeepSeekV3.Spec : PairRope.Spec;
        var a = spec.Attention;
        const int tokens = 5, start = 3000; // beyond V3's original 4096-token context is not needed: YaRN changes the frequencies everywhere
        var rope = new RotaryEmbedding(a.QkRopeHeadDim, spec.RopeTheta, spec.Yarn);
        var q = randn([tokens, a.Heads, a.QkHeadDim], generator: generator);
        var kPe = randn([tokens, a.QkRopeHeadDim], generator: generator);
        var angles = outer(KeptScalars.Range(0, start + tokens, ScalarType.Float64), tensor(rope.Frequencies.ToArray()));
        using var qs = Data.Upload(_device, q);
        using var ks = Data.Upload(_device, kPe);
        using var positions = Data.UploadInts(_device, KeptScalars.Range(start, start + tokens));
        using var cos = Data.Upload(_device, angles.cos());
        using var sin = Data.Upload(_device, angles.sin());
        if (model == "DeepSeekV3") new DeepSeekV3.Kernels.Launcher(_device).RotaryEmbedding(qs.View, ks.View, positions.View, cos.View, sin.View);
        else new PairRope.Kernels.Launcher(_device).RotaryEmbedding(qs.View, ks.View, positions.View, cos.View, sin.View);

        var qPe = q.narrow(2, a.QkNopeHeadDim, a.QkRopeHeadDim).unsqueeze(0);
        var expectedQ = cat([q.narrow(2, 0, a.QkNopeHeadDim), rope.Apply(qPe, start).squeeze(0)], 2);
        var expectedK = rope.Apply(kPe.view(1, tokens, 1, -1), start).view(tokens, -1);
        Checks.Close(Data.Download(qs, tokens, a.Heads, a.QkHeadDim), expectedQ, 1e-6, "RotaryEmbedding q", seed);
        Checks.Close(Data.Download(ks, tokens, a.QkRopeHeadDim), expectedK, 1e-6, "RotaryEmbedding k_pe", seed);
    }

    [Theory]
    [InlineData("DeepSeekV3")]
    [InlineData("V2Style")]
    [InlineData("TinySeek")]
    public void Router_matches_the_gate(string model)
    {
        var (generator, seed) = Data.Fresh();
        var (launcher, moe) = (Launcher(model), ModelSpecOf(model).Moe!);
        const int tokens = 37;
        Routes.Check(_device, launcher, moe, tokens, generator, seed, model);
    }

    [Theory]
    [InlineData("DeepSeekV3", 1)]
    [InlineData("DeepSeekV3", 3)]
    [InlineData("V2Style", 2)]
    [InlineData("TinySeek", 4)]
    public void MLA_decoding_matches_the_absorbed_einsums(string model, int splits)
    {
        var (generator, seed) = Data.Fresh();
        Attention.Check(_device, Launcher(model), ModelSpecOf(model), [1, 70, 0, 33], capacity: 96, splits, generator, seed, model);
    }

    internal static ModelSpec ModelSpecOf(string model) => model switch
    {
        "DeepSeekV3" => DeepSeekV3.Spec,
        "V2Style" => V2Style.Spec,
        "TinySeek" => TinySeek.Spec,
        _ => throw new ArgumentOutOfRangeException(nameof(model)),
    };

    private object Launcher(string model) => LauncherFor(_device, model);

    internal static object LauncherFor(GpuDevice device, string model) => model switch
    {
        "DeepSeekV3" => new DeepSeekV3.Kernels.Launcher(device),
        "V2Style" => new V2Style.Kernels.Launcher(device),
        "TinySeek" => new TinySeek.Kernels.Launcher(device),
        _ => throw new ArgumentOutOfRangeException(nameof(model)),
    };

    private void Launch(string model, string method, params object[] arguments)
    {
        object launcher = Launcher(model);
        launcher.GetType().GetMethod(method)!.Invoke(launcher, arguments);
    }
}
