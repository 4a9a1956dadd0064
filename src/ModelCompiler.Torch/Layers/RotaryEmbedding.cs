using ModelCompiler.Planning;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Layers;

/// <summary>
/// RoPE in DeepSeek's interleaved layout: channels (2i, 2i+1) form one complex number rotated by pos·f_i, the frequencies
/// <see cref="RopeMath.Frequencies"/> gives (YaRN's blend included); the matching softmax correction mscale² is
/// <see cref="RopeMath.SoftmaxScale"/>.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly Tensor _frequencies; // [rope/2], float64 for exact angles

    /// <summary>Builds the frequency table of a <paramref name="ropeDim"/>-wide rotary slice.</summary>
    public RotaryEmbedding(int ropeDim, double theta, YarnSpec? yarn)
    {
        var frequencies = RopeMath.Frequencies(ropeDim, theta, yarn);
        Frequencies = frequencies;
        _frequencies = tensor(frequencies, ScalarType.Float64);
    }

    /// <summary>The per-pair frequencies f'_i.</summary>
    public IReadOnlyList<double> Frequencies { get; }

    /// <summary>
    /// Rotates <paramref name="x"/> [batch, tokens, heads, rope] at positions start … start+tokens−1 (shared by the batch).
    /// </summary>
    public Tensor Apply(Tensor x, long start)
    {
        using var scope = NewDisposeScope();
        long tokens = x.shape[1];
        var angles = outer(KeptScalars.Range(start, start + tokens, ScalarType.Float64, x.device), _frequencies.to(x.device)); // [tokens, rope/2]
        var cos = angles.cos().to(ScalarType.Float32).view(1, tokens, 1, -1);
        var sin = angles.sin().to(ScalarType.Float32).view(1, tokens, 1, -1);
        var pairs = x.to(ScalarType.Float32).view(x.shape[0], tokens, x.shape[2], -1, 2);
        var real = pairs.select(-1, 0);
        var imaginary = pairs.select(-1, 1);
        var rotated = stack([(real * cos) - (imaginary * sin), (real * sin).Plus(imaginary * cos)], -1);
        return rotated.view(x.shape).to(x.dtype).MoveToOuterDisposeScope();
    }
}
