using ModelCompiler.Checkpoints;
using ModelCompiler;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Layers;

/// <summary>
/// The format GEMM inputs are computed in, shared by every layer of a model and switchable at run time. FP32 runs the
/// linear layers as they are; BF16 rounds both inputs to bfloat16; FP8-E4M3 quantises and dequantises them as DeepSeek-V3
/// trains (deepseek-reference §4.2): activations in 1×tile groups along the inner dimension, weights in block×block
/// blocks, each group scaled by max(amax, 1e-4)/448, with a straight-through gradient. The embedding, the output head and
/// the router stay in full precision (§4.4).
/// </summary>
public sealed class ComputePrecision
{
    /// <summary>Creates the setting.</summary>
    public ComputePrecision(NumericFormat format, int activationTile = 128, int weightBlock = 128)
    {
        Format = format;
        ActivationTile = activationTile;
        WeightBlock = weightBlock;
    }

    /// <summary>The format of GEMM inputs.</summary>
    public NumericFormat Format { get; set; }

    /// <summary>Channels per activation scaling group.</summary>
    public int ActivationTile { get; }

    /// <summary>Edge of a weight scaling block.</summary>
    public int WeightBlock { get; }

    /// <summary><paramref name="layer"/> applied to <paramref name="x"/> with its inputs in <see cref="Format"/>.</summary>
    public Tensor Linear(Linear layer, Tensor x)
    {
        switch (Format)
        {
            case NumericFormat.Fp8E4M3:
                using (var scope = NewDisposeScope())
                {
                    var input = StraightThrough(x, Fp8Quantization.QuantizeDequantizeActivations(x, ActivationTile));
                    var weight = StraightThrough(layer.weight!, Fp8Quantization.QuantizeDequantizeWeight(layer.weight!, WeightBlock));
                    return nn.functional.linear(input, weight).MoveToOuterDisposeScope();
                }

            case NumericFormat.Bf16:
            case NumericFormat.Fp16:
                using (var scope = NewDisposeScope())
                {
                    var type = Format == NumericFormat.Bf16 ? ScalarType.BFloat16 : ScalarType.Float16;
                    var input = StraightThrough(x, x.to(type).to(x.dtype));
                    var weight = StraightThrough(layer.weight!, layer.weight!.to(type).to(x.dtype));
                    return nn.functional.linear(input, weight).MoveToOuterDisposeScope();
                }

            default:
                return layer.call(x);
        }
    }

    /// <summary>The value of <paramref name="rounded"/> with the gradient of <paramref name="x"/> (straight-through estimator).</summary>
    private static Tensor StraightThrough(Tensor x, Tensor rounded) => x.Plus((rounded - x).detach());
}

/// <summary>FP8 E4M3 quantise-dequantise with DeepSeek's fine-grained scaling (the semantics of its <c>act_quant</c>).</summary>
public static class Fp8Quantization
{
    /// <summary>Largest finite E4M3 value.</summary>
    public const float Max = 448f;

    /// <summary>Smallest amax a group is scaled by, so that an all-zero group gives zeros, never NaN.</summary>
    public const float AmaxFloor = 1e-4f;

    // The constants as Scalars that live as long as the process (KeptScalars says why), converted from float as before.
    private static readonly Scalar s_max = Max, s_amaxFloor = AmaxFloor, s_smallestNormal = MathF.Pow(2, -6);

    /// <summary>Rounds values (already scaled into ±448) to the nearest E4M3 number, ties to even, saturating at ±448.</summary>
    public static Tensor RoundToE4M3(Tensor scaled)
    {
        using var scope = NewDisposeScope();
        var magnitude = scaled.abs().clamp_max(s_max);
        // Spacing: 2^(e−3) in the binade [2^e, 2^(e+1)) for e ≥ −6; subnormals below 2^−6 are spaced 2^−9.
        var exponent = magnitude.clamp_min(s_smallestNormal).log2().floor();
        var spacing = (exponent - KeptScalars.OfInteger(3)).exp2();
        var rounded = (magnitude / spacing).round() * spacing;
        return (rounded.clamp_max(s_max) * scaled.sign()).MoveToOuterDisposeScope();
    }

    /// <summary>Activations [..., K]: groups of <paramref name="tile"/> consecutive channels (the last group may be shorter) share one scale.</summary>
    public static Tensor QuantizeDequantizeActivations(Tensor x, int tile)
    {
        using var scope = NewDisposeScope();
        var shape = x.shape;
        long k = shape[^1], padded = (k + tile - 1) / tile * tile;
        var rows = x.reshape(-1, k);
        if (padded != k) rows = nn.functional.pad(rows, [0, padded - k]);
        var groups = rows.view(-1, padded / tile, tile);
        var scale = groups.abs().amax([-1L], keepdim: true).clamp_min(s_amaxFloor) / s_max;
        var result = (RoundToE4M3(groups / scale) * scale).view(-1, padded).narrow(1, 0, k).reshape(shape);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>A weight [rows, cols] in <paramref name="block"/>×<paramref name="block"/> blocks (edge blocks may be smaller).</summary>
    public static Tensor QuantizeDequantizeWeight(Tensor weight, int block)
    {
        using var scope = NewDisposeScope();
        long rows = weight.shape[0], cols = weight.shape[1];
        long paddedRows = (rows + block - 1) / block * block, paddedCols = (cols + block - 1) / block * block;
        var padded = nn.functional.pad(weight, [0, paddedCols - cols, 0, paddedRows - rows]);
        var blocks = padded.view(paddedRows / block, block, paddedCols / block, block);
        var scale = blocks.abs().amax([1L, 3L], keepdim: true).clamp_min(s_amaxFloor) / s_max;
        var result = (RoundToE4M3(blocks / scale) * scale).view(paddedRows, paddedCols).narrow(0, 0, rows).narrow(1, 0, cols);
        return result.MoveToOuterDisposeScope();
    }
}
