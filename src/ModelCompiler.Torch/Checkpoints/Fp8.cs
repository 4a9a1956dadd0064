using ModelCompiler.Checkpoints;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Checkpoints;

/// <summary>
/// FP8 E4M3 ("fn": bias 7, max 448, no infinities, S.1111.111 is NaN) decoding, and DeepSeek's 128×128 block-scaled
/// dequantisation: weight = fp8 · weight_scale_inv[⌊r/128⌋, ⌊c/128⌋].
/// </summary>
public static class Fp8
{
    private static readonly float[] s_e4m3 = Enumerable.Range(0, 256).Select(DecodeByte).ToArray();

    /// <summary>The value of one E4M3 byte (<see cref="Fp8E4M3.Decode"/>).</summary>
    public static float DecodeByte(int bits) => Fp8E4M3.Decode((byte)bits);

    /// <summary>Decodes raw E4M3 bytes (a U8 tensor) to float32 of the same shape.</summary>
    public static Tensor DecodeE4M3(Tensor bytes)
    {
        using var table = tensor(s_e4m3);
        using var indices = bytes.to(ScalarType.Int64).flatten();
        using var values = table.index_select(0, indices);
        return values.view(bytes.shape);
    }

    /// <summary>Multiplies a decoded [rows, cols] weight by its [⌈rows/b⌉, ⌈cols/b⌉] block scales.</summary>
    public static Tensor Dequantize(Tensor weight, Tensor scaleInverse, int block, string name)
    {
        long rows = weight.shape[0], cols = weight.shape[1];
        long[] expected = [(rows + block - 1) / block, (cols + block - 1) / block];
        if (!scaleInverse.shape.SequenceEqual(expected))
        {
            throw new CheckpointException($"tensor '{name}_scale_inv' has shape [{string.Join(", ", scaleInverse.shape)}] but a [{rows}, {cols}] weight in {block}×{block} blocks needs [{expected[0]}, {expected[1]}]");
        }

        using var expanded = scaleInverse.to(ScalarType.Float32).repeat_interleave(block, 0).repeat_interleave(block, 1);
        using var cropped = expanded.narrow(0, 0, rows).narrow(1, 0, cols);
        return weight * cropped;
    }
}
