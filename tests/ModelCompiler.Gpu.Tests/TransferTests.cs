using ILGPU.Runtime;
using ModelCompiler.Torch.Gpu;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Gpu.Tests;

/// <summary>Tensors to device buffers and back: values exact, bf16 as its bit patterns, shapes checked.</summary>
public sealed class TransferTests(OpenClDevice fixture) : IClassFixture<OpenClDevice>
{
    private readonly GpuDevice _device = fixture.Device;

    [Fact]
    public void Float_int_byte_and_bf16_tensors_round_trip_exactly()
    {
        var (generator, _) = Data.Fresh();
        var floats = randn([3, 5], generator: generator);
        using (var buffer = TensorTransfer.ToDevice(_device, floats)) Assert.True(TensorTransfer.ToTensor(buffer, 3, 5).eq(floats).all().item<bool>());

        var bf16 = randn([4, 6], generator: generator).to(ScalarType.BFloat16);
        using (var buffer = TensorTransfer.ToDeviceBf16(_device, bf16))
        {
            var back = TensorTransfer.ToTensorBf16(buffer, 4, 6);
            Assert.Equal(ScalarType.BFloat16, back.dtype);
            Assert.True(back.eq(bf16).all().item<bool>());
            Assert.Equal(Bf16.FromFloat(bf16[1, 2].to(ScalarType.Float32).item<float>()), buffer.GetAsArray1D()[8]);
        }

        var ids = randint(0, 1000, [7], generator: generator);
        using (var buffer = TensorTransfer.ToDeviceInt32(_device, ids)) Assert.True(TensorTransfer.ToTensor(buffer, 7).eq(ids).all().item<bool>());

        var codes = randint(0, 256, [2, 8], generator: generator, dtype: ScalarType.Byte);
        using (var buffer = TensorTransfer.ToDeviceBytes(_device, codes)) Assert.True(TensorTransfer.ToTensor(buffer, 2, 8).eq(codes).all().item<bool>());
    }

    [Fact]
    public void A_wrong_shape_or_an_id_beyond_int32_is_an_error_naming_it()
    {
        using var buffer = TensorTransfer.ToDevice(_device, ones(6));
        Assert.Contains("[4, 2]", Assert.Throws<ArgumentException>(() => TensorTransfer.ToTensor(buffer, 4, 2)).Message, StringComparison.Ordinal);
        Assert.Throws<OverflowException>(() => TensorTransfer.ToDeviceInt32(_device, tensor(new long[] { 1L << 40 })));
        Assert.Contains("U8", Assert.Throws<ArgumentException>(() => TensorTransfer.ToDeviceBytes(_device, ones(3))).Message, StringComparison.Ordinal);
    }
}
