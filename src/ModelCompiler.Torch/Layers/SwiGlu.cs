using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Layers;

/// <summary>
/// SwiGLU feed-forward: down_proj( silu(gate_proj x) ⊙ up_proj x ), no biases. Used for dense layers, each routed expert and
/// the shared experts. Checkpoint parameters: <c>gate_proj.weight</c>, <c>up_proj.weight</c> [width, d], <c>down_proj.weight</c> [d, width].
/// </summary>
public sealed class SwiGlu : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "gate_proj")]
    private readonly Linear _gate;
    [ComponentName(Name = "up_proj")]
    private readonly Linear _up;
    [ComponentName(Name = "down_proj")]
    private readonly Linear _down;

    /// <summary>Creates the block.</summary>
    public SwiGlu(long hidden, long intermediate)
        : base(nameof(SwiGlu))
    {
        _gate = nn.Linear(hidden, intermediate, hasBias: false);
        _up = nn.Linear(hidden, intermediate, hasBias: false);
        _down = nn.Linear(intermediate, hidden, hasBias: false);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        using var gate = _gate.call(input);
        using var activated = nn.functional.silu(gate);
        using var up = _up.call(input);
        using var product = activated * up;
        return _down.call(product);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _gate.Dispose();
            _up.Dispose();
            _down.Dispose();
        }

        base.Dispose(disposing);
    }
}
