using System.Globalization;
using System.Text;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Training;

/// <summary>
/// A hash of a model's declaration, weights and whatever else ranks must agree on, for <see cref="Distributed.Mpi.RequireSameOnAllRanks"/>:
/// ranks that start from different weights or options fail at start-up, naming the rank, instead of training apart.
/// </summary>
internal static class ModelFingerprint
{
    /// <summary>FNV-1a over the spec, <paramref name="agreed"/> and the sum of every parameter.</summary>
    public static long Of(DeepSeekCausalLM model, string agreed)
    {
        var text = new StringBuilder($"{model.Spec}|{agreed}");
        using (no_grad())
        {
            foreach (var p in model.parameters()) text.Append('|').Append(p.sum().item<float>().ToString("R", CultureInfo.InvariantCulture));
        }

        ulong hash = 14695981039346656037;
        foreach (byte b in Encoding.UTF8.GetBytes(text.ToString())) hash = (hash ^ b) * 1099511628211;
        return unchecked((long)hash);
    }
}
