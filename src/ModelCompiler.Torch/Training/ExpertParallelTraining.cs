using ModelCompiler.Distributed;
using ModelCompiler.Torch.Parallel;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Training;

/// <summary>
/// The end of a training step with the experts spread over an <see cref="ExpertParallelGroup"/>, shared by
/// <see cref="Pretrainer"/> and <see cref="PipelineTrainer"/>: every parameter but this rank's experts is a replica whose
/// gradient the group's ranks computed on different rows, so it is summed over the group; the experts' gradients are already
/// whole (the all-to-all brought every row's contribution to the expert's rank).
/// </summary>
internal static class ExpertParallelTraining
{
    /// <summary>
    /// Sums the replicated parameters' gradients over the group, then clips by the norm of the whole gradient (replicas
    /// counted once, each rank's experts once) as clip_grad_norm_ does in one process; returns that norm.
    /// </summary>
    public static double SumAndClip(DeepSeekCausalLM model, ExpertParallelGroup group, double maxNorm)
    {
        using var _ = no_grad();
        var held = model.MoeLayers.SelectMany(m => m.HeldExpertParameters()).ToHashSet<Tensor>(ReferenceEqualityComparer.Instance);
        var gradients = model.parameters().Where(p => p.grad is not null).Select(p => (Gradient: p.grad!, Held: held.Contains(p))).ToList();
        var replicated = gradients.Where(g => !g.Held).Select(g => g.Gradient).ToList();
        if (replicated.Count > 0)
        {
            var sum = cat(replicated.Select(g => g.flatten().to(ScalarType.Float32).cpu()).ToList()).data<float>().ToArray();
            group.Communicator.AllReduceSum(sum);
            long offset = 0;
            foreach (var gradient in replicated)
            {
                gradient.copy_(tensor(sum.AsSpan((int)offset, (int)gradient.numel()).ToArray(), gradient.shape).to(gradient.dtype).to(gradient.device));
                offset += gradient.numel();
            }
        }

        var expertSquares = new[] { (float)Squares(gradients.Where(g => g.Held).Select(g => g.Gradient)) };
        group.Communicator.AllReduceSum(expertSquares);
        double norm = Math.Sqrt(Squares(replicated) + expertSquares[0]);
        double coefficient = Math.Min(1.0, maxNorm / (norm + 1e-6));
        using var scalars = new ScalarScope();
        foreach (var entry in gradients) entry.Gradient.mul_(scalars.Of(coefficient));
        return norm;
    }

    /// <summary>The expert loads and a few loss sums, summed over <paramref name="communicator"/>'s ranks (loads in place).</summary>
    public static (double First, double Second, double Third) Sum(Mpi communicator, List<long[]> loads, double first, double second, double third)
    {
        var values = loads.SelectMany(l => l.Select(c => (float)c)).Concat([(float)first, (float)second, (float)third]).ToArray();
        communicator.AllReduceSum(values);
        int i = 0;
        foreach (var layer in loads)
        {
            for (int e = 0; e < layer.Length; e++) layer[e] = (long)Math.Round(values[i++]);
        }

        return (values[i], values[i + 1], values[i + 2]);
    }

    /// <summary>Σ of the squared elements, in FP64.</summary>
    private static double Squares(IEnumerable<Tensor> tensors)
    {
        double sum = 0;
        foreach (var gradient in tensors)
        {
            var wide = gradient.to(ScalarType.Float64);
            sum += (wide * wide).sum().item<double>();
        }

        return sum;
    }
}
