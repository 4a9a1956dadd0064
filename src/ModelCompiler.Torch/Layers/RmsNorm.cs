using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Layers;

/// <summary>
/// RMSNorm, y = w ⊙ x / √(mean(x²) + ε), computed in FP32 and cast back (DeepSeek's official code since 2025-08-27).
/// Checkpoint parameter: <c>weight</c> [width].
/// </summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")]
    private readonly Parameter _weight;
    private readonly double _epsilon;

    /// <summary>Creates the norm with unit weights.</summary>
    public RmsNorm(long width, double epsilon)
        : base(nameof(RmsNorm))
    {
        _epsilon = epsilon;
        _weight = new Parameter(ones(width));
        RegisterComponents();
    }

    /// <summary>The learned scale, [width].</summary>
    public Parameter Weight => _weight;

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = input.to(ScalarType.Float32);
        var normalised = x * rsqrt(x.pow(KeptScalars.OfInteger(2)).mean([-1L], keepdim: true).Plus(_epsilon));
        return (normalised * _weight.to(ScalarType.Float32)).to(input.dtype).MoveToOuterDisposeScope();
    }
}
