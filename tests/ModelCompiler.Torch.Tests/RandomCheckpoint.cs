using static TorchSharp.torch;

namespace ModelCompiler.Torch.Tests;

/// <summary>Random weights at the fixtures' scale: matrices N(0, 1/fan_in), norms 1 + 0.1·N(0,1), selection bias 0.05·N(0,1).</summary>
internal static class RandomCheckpoint
{
    public static void Initialise(DeepSeekCausalLM model, int seed)
    {
        using var _ = no_grad();
        var generator = new TorchSharp.torch.Generator((ulong)(uint)seed);
        foreach (var (name, tensor) in model.state_dict())
        {
            var noise = randn(tensor.shape, generator: generator);
            if (tensor.dim() == 2) tensor.copy_(noise / KeptScalars.Of(Math.Sqrt(tensor.shape[1])));
            else if (name.EndsWith("e_score_correction_bias", StringComparison.Ordinal)) tensor.copy_(noise.Times(0.05));
            else tensor.copy_(noise.Times(0.1).Plus(1));
        }
    }
}
