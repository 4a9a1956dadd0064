using ModelCompiler.Torch.Checkpoints;
using ModelCompiler.Torch.Layers;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Tests;

/// <summary>FP8 E4M3 quantise-dequantise against a brute-force reference on fresh random tiles.</summary>
public sealed class Fp8QuantizationTests
{
    private static readonly float[] Grid = Enumerable.Range(0, 256).Select(Fp8.DecodeByte).Where(float.IsFinite).Distinct().Order().ToArray();

    /// <summary>The nearest E4M3 value, ties to the one with an even mantissa (the larger-magnitude neighbour when its last bit is 0).</summary>
    private static float Nearest(float v)
    {
        v = Math.Clamp(v, -448f, 448f);
        int i = Array.BinarySearch(Grid, v);
        if (i >= 0) return Grid[i];
        i = ~i;
        float below = Grid[i - 1], above = Grid[i];
        float dBelow = v - below, dAbove = above - v;
        if (dBelow != dAbove) return dBelow < dAbove ? below : above;
        // Tie: even mantissa = the encoding with a zero lowest bit.
        int Bits(float x) => Enumerable.Range(0, 256).First(b => Fp8.DecodeByte(b) == x && (x != 0 || b == 0));
        return (Bits(below) & 1) == 0 ? below : above;
    }

    [Fact]
    public void Rounding_matches_the_nearest_e4m3_value()
    {
        using var scope = NewDisposeScope();
        var grid = tensor(Grid);
        Assert.Equal(Grid, Fp8Quantization.RoundToE4M3(grid).data<float>().ToArray());
        var values = (randn(4000) * exp2(randint(-12, 10, [4000]).to(ScalarType.Float32))).clamp(KeptScalars.OfInteger(-500), KeptScalars.OfInteger(500));
        var rounded = Fp8Quantization.RoundToE4M3(values).data<float>().ToArray();
        var input = values.data<float>().ToArray();
        for (int i = 0; i < input.Length; i++) Assert.True(Nearest(input[i]) == rounded[i], $"{input[i]:R} → {rounded[i]:R}, nearest {Nearest(input[i]):R}");
    }

    [Fact]
    public void Activation_tiles_are_scaled_by_their_own_amax_and_a_zero_tile_stays_zero()
    {
        using var scope = NewDisposeScope();
        var x = randn(3, 5, 300).Times(3);
        x[0, 0, TensorIndex.Slice(128, 256)] = zeros(128);       // an all-zero tile
        var y = Fp8Quantization.QuantizeDequantizeActivations(x, 128);
        Assert.False(y.isnan().any().item<bool>());
        Assert.Equal(0f, y[0, 0, TensorIndex.Slice(128, 256)].abs().max().item<float>());
        var rows = x.reshape(-1, 300);
        var got = y.reshape(-1, 300);
        for (int r = 0; r < rows.shape[0]; r++)
        {
            foreach (var (start, length) in new[] { (0, 128), (128, 128), (256, 44) })
            {
                var tile = rows[r].narrow(0, start, length).data<float>().ToArray();
                float scale = Math.Max(tile.Max(Math.Abs), 1e-4f) / 448f;
                var expected = tile.Select(v => Nearest(v / scale) * scale).ToArray();
                var actual = got[r].narrow(0, start, length).data<float>().ToArray();
                for (int i = 0; i < length; i++) Assert.Equal(expected[i], actual[i], 5);
            }
        }
    }

    [Fact]
    public void Weight_blocks_are_scaled_per_block_including_ragged_edges()
    {
        using var scope = NewDisposeScope();
        var w = randn(200, 150).Times(0.05);
        var y = Fp8Quantization.QuantizeDequantizeWeight(w, 128);
        foreach (var (r0, rows) in new[] { (0, 128), (128, 72) })
        {
            foreach (var (c0, cols) in new[] { (0, 128), (128, 22) })
            {
                var block = w.narrow(0, r0, rows).narrow(1, c0, cols);
                float scale = Math.Max(block.abs().max().item<float>(), 1e-4f) / 448f;
                var expected = block.data<float>().ToArray().Select(v => Nearest(v / scale) * scale).ToArray();
                var actual = y.narrow(0, r0, rows).narrow(1, c0, cols).contiguous().data<float>().ToArray();
                for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 6);
            }
        }
    }

    [Fact]
    public void Fp8_linear_has_a_straight_through_gradient()
    {
        using var scope = NewDisposeScope();
        using var layer = nn.Linear(256, 64, hasBias: false);
        var precision = new ComputePrecision(ModelCompiler.NumericFormat.Fp8E4M3);
        var x = randn(4, 256, requires_grad: true);
        var y = precision.Linear(layer, x);
        var upstream = randn(4, 64);
        (y * upstream).sum().backward();

        var wq = Fp8Quantization.QuantizeDequantizeWeight(layer.weight!.detach(), 128);
        Assert.True((x.grad! - upstream.matmul(wq)).abs().max().item<float>() < 1e-5);                                  // ∂/∂x through the quantised weight
        var xq = Fp8Quantization.QuantizeDequantizeActivations(x.detach(), 128);
        Assert.True((layer.weight!.grad! - upstream.t().matmul(xq)).abs().max().item<float>() < 1e-5);                   // ∂/∂W through the quantised input
        Assert.True((y - nn.functional.linear(xq, wq)).abs().max().item<float>() < 1e-5);
    }
}
