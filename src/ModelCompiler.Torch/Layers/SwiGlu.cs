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

    private readonly ComputePrecision _precision;

    /// <summary>Creates the block; its GEMM inputs are computed in <paramref name="precision"/>'s format (FP32 when null).</summary>
    public SwiGlu(long hidden, long intermediate, ComputePrecision? precision = null)
        : base(nameof(SwiGlu))
    {
        _precision = precision ?? new ComputePrecision(ModelCompiler.NumericFormat.Fp32);
        _gate = nn.Linear(hidden, intermediate, hasBias: false);
        _up = nn.Linear(hidden, intermediate, hasBias: false);
        _down = nn.Linear(intermediate, hidden, hasBias: false);
        RegisterComponents();
    }

    /// <summary>gate_proj's weight [intermediate, hidden].</summary>
    public Tensor GateWeight => _gate.weight!;

    /// <summary>up_proj's weight [intermediate, hidden].</summary>
    public Tensor UpWeight => _up.weight!;

    /// <summary>down_proj's weight [hidden, intermediate].</summary>
    public Tensor DownWeight => _down.weight!;

    /// <summary>The format its GEMM inputs are computed in.</summary>
    public ModelCompiler.NumericFormat Format => _precision.Format;

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        using var gate = _precision.Linear(_gate, input);
        using var activated = nn.functional.silu(gate);
        using var up = _precision.Linear(_up, input);
        using var product = activated * up;
        return _precision.Linear(_down, product);
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
