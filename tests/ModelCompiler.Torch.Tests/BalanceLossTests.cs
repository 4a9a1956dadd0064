using ModelCompiler.Planning;
using ModelCompiler.Torch.Training;
using Xunit;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Tests;

/// <summary>The auxiliary balance losses against a hand-written computation over the same routing.</summary>
public sealed class BalanceLossTests
{
    [Theory]
    [InlineData(ExpertScoring.Sigmoid, 1e-2, 0.0, 0.0)]   // V3: sequence-wise, normalised sigmoid scores
    [InlineData(ExpertScoring.Softmax, 3e-3, 5e-2, 2e-2)] // V2: expert, device and communication losses
    public void Losses_match_the_formulas(ExpertScoring scoring, double alpha, double alpha2, double alpha3)
    {
        using var scope = NewDisposeScope();
        bool v3 = scoring == ExpertScoring.Sigmoid;
        var spec = new ModelSpec
        {
            VocabularySize = ArithmeticTasks.VocabularySize, HiddenSize = 32, Layers = 2, DenseLayers = 1, DenseIntermediateSize = 64, SequenceLength = 16,
            Attention = new AttentionSpec(2, 32, 0, 8, 4, 8),
            Moe = new MoeSpec(8, 2, 16, 1, scoring, 4, 2, 1.0, v3, v3 ? LoadBalancing.AuxiliaryLossFree : LoadBalancing.AuxiliaryLoss, 0,
                v3 ? alpha : 0, v3 ? 0 : alpha, alpha2, alpha3),
        };
        using var model = new DeepSeekCausalLM(spec, seed: 4);
        using var trainer = new Pretrainer(model, new PretrainOptions());
        var (rows, mask) = Pretrainer.Layout(Enumerable.Range(0, 3).Select(i => ArithmeticTasks.Draw(5, i, 0)).ToList(), 16);
        trainer.Losses(rows, mask);
        var routing = model.Layers[1].Moe!.LastRouting!;
        float[,] s = ToMatrix(routing.Scores);
        long[] chosen = routing.Experts.data<long>().ToArray();

        const int B = 3, T = 15, N = 8, K = 2, D = 4, M = 2;
        double expected = 0;
        for (int b = 0; b < B; b++)
        {
            var f = new double[N];
            var p = new double[N];
            var used = new bool[T, D];
            for (int t = 0; t < T; t++)
            {
                int row = (b * T) + t;
                double sum = Enumerable.Range(0, N).Sum(i => (double)s[row, i]);
                for (int i = 0; i < N; i++) p[i] += (v3 ? s[row, i] / sum : s[row, i]) / T;
                for (int k = 0; k < K; k++)
                {
                    int e = (int)chosen[(row * K) + k];
                    f[e] += (double)N / (K * T);
                    used[t, e / (N / D)] = true;
                }
            }

            expected += alpha * Enumerable.Range(0, N).Sum(i => f[i] * p[i]) / B;
            for (int d = 0; d < D; d++)
            {
                var group = Enumerable.Range(d * (N / D), N / D).ToArray();
                double pd = group.Sum(i => p[i]);
                expected += alpha2 * group.Average(i => f[i]) * pd / B;
                double fComm = (double)D / (M * T) * Enumerable.Range(0, T).Count(t => used[t, d]);
                expected += alpha3 * fComm * pd / B;
            }
        }

        var loss = trainer.BalanceLoss(B);
        Assert.Equal(expected, loss.item<float>(), 6);
        loss.backward();
        var gateGradient = model.named_parameters().Single(p => p.name == "model.layers.1.mlp.gate.weight").parameter.grad!;
        Assert.True(gateGradient.abs().sum().item<float>() > 0, "the loss must reach the router through P");
    }

    private static float[,] ToMatrix(Tensor t)
    {
        var data = t.detach().contiguous().data<float>().ToArray();
        var result = new float[t.shape[0], t.shape[1]];
        Buffer.BlockCopy(data, 0, result, 0, data.Length * sizeof(float));
        return result;
    }
}
