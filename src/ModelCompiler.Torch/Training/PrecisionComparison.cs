using ModelCompiler.Checkpoints;
using ModelCompiler.Planning;
using ModelCompiler.Torch.Checkpoints;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Training;

/// <summary>
/// The training loss of one set of weights computed with each GEMM input precision (FP32, BF16, FP8 E4M3 with 1×128 / 128×128
/// scaling): what the precision policy changes in a forward pass, apart from the different trajectory a whole training run
/// then takes (on a 64-wide model two FP32 seeds end 5–20 % apart, so two runs cannot show a percent-level effect).
/// </summary>
public static class PrecisionComparison
{
    /// <summary>Next-token cross-entropy on the answer positions of <paramref name="problems"/> under each format.</summary>
    public static IReadOnlyList<(NumericFormat Format, double Loss)> Losses(DeepSeekCausalLM model, IReadOnlyList<Problem> problems, int rowLength)
    {
        ArgumentOutOfRangeException.ThrowIfZero(problems.Count);
        var restore = model.Precision.Format;
        model.eval();
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var (tokens, answers) = Pretrainer.Layout(problems, rowLength);
        var inputs = tokens.narrow(1, 0, rowLength - 1);
        var targets = tokens.narrow(1, 1, rowLength - 1);
        var mask = answers.narrow(1, 1, rowLength - 1);
        double positions = mask.sum().item<long>();
        var losses = new List<(NumericFormat, double)>();
        try
        {
            foreach (var format in new[] { NumericFormat.Fp32, NumericFormat.Bf16, NumericFormat.Fp8E4M3 })
            {
                model.Precision.Format = format;
                using var step = NewDisposeScope();
                var summed = Pretrainer.SummedCrossEntropy(model.forward(inputs), targets, mask);
                losses.Add((format, summed.item<float>() / positions));
            }
        }
        finally
        {
            model.Precision.Format = restore;
        }

        return losses;
    }

    /// <summary>Loads the checkpoint of a pre-training run folder (its <c>checkpoint/</c>) for <paramref name="spec"/>.</summary>
    public static DeepSeekCausalLM Load(ModelSpec spec, string runDirectory)
    {
        string directory = Path.Combine(runDirectory, "checkpoint");
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"No checkpoint/ in '{runDirectory}': give a pre-training run folder.");
        using var checkpoint = Checkpoint.Open(directory);
        return checkpoint.CreateModel(spec, includeMtp: checkpoint.HasMtp); // refuses a checkpoint of another architecture
    }
}
