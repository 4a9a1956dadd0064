using ModelCompiler.Checkpoints;
using ModelCompiler.Torch.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Training;

/// <summary>
/// AdamW (decoupled weight decay, as PyTorch's) over named parameters, with the moments kept in the precision policy's
/// format (FP32, or BF16 as DeepSeek-V3 does) and its whole state saved to and restored from safetensors exactly, so that
/// a resumed run repeats an uninterrupted one bit for bit.
/// </summary>
public sealed class AdamWOptimizer : IDisposable
{
    private readonly List<(string Name, Parameter Parameter, bool Decay)> _parameters;
    private readonly Dictionary<string, (Tensor First, Tensor Second)> _moments = new(StringComparer.Ordinal);
    private readonly double _beta1, _beta2, _epsilon, _weightDecay;
    private readonly ScalarType _momentType;

    /// <summary>Creates the optimizer; parameters of rank ≥ 2 are decayed, vectors (norms) are not.</summary>
    public AdamWOptimizer(IEnumerable<(string Name, Parameter Parameter)> parameters, double beta1, double beta2, double weightDecay,
        double epsilon = 1e-8, ScalarType momentType = ScalarType.Float32)
    {
        _parameters = parameters.Select(p => (p.Name, p.Parameter, p.Parameter.dim() >= 2)).ToList();
        _beta1 = beta1;
        _beta2 = beta2;
        _epsilon = epsilon;
        _weightDecay = weightDecay;
        _momentType = momentType;
    }

    /// <summary>Updates taken.</summary>
    public long Steps { get; private set; }

    /// <summary>
    /// Drops every gradient (PyTorch's <c>set_to_none</c>): a parameter that gets no gradient in a step — an expert no token
    /// was routed to — is then not updated at all, the same whether or not the run was resumed in between.
    /// </summary>
    public void ZeroGrad()
    {
        foreach (var (_, parameter, _) in _parameters) parameter.grad = null;
    }

    /// <summary>One update at learning rate <paramref name="lr"/>.</summary>
    public void Step(double lr)
    {
        Steps++;
        double correction1 = 1 - Math.Pow(_beta1, Steps), correction2 = 1 - Math.Pow(_beta2, Steps);
        using Scalar rate = lr, decayFactor = 1 - (lr * _weightDecay), firstCorrection = correction1, secondCorrection = correction2;
        using var _ = no_grad();
        foreach (var (name, parameter, decay) in _parameters)
        {
            if (parameter.grad is not { } gradient) continue;
            using var scope = NewDisposeScope();
            if (!_moments.TryGetValue(name, out var moments))
            {
                moments = (zeros_like(parameter, _momentType).DetachFromDisposeScope(), zeros_like(parameter, _momentType).DetachFromDisposeScope());
                _moments[name] = moments;
            }

            // m·β₁ + g·(1 − β₁), v·β₂ + g²·(1 − β₂), p −= lr · (m / c₁) / (√(v / c₂) + ε): the same operations as PyTorch's.
            var first = moments.First.to(ScalarType.Float32).Times(_beta1).Plus(gradient.Times(1 - _beta1));
            var second = moments.Second.to(ScalarType.Float32).Times(_beta2).Plus(gradient.pow(KeptScalars.OfInteger(2)).Times(1 - _beta2));
            moments.First.copy_(first);
            moments.Second.copy_(second);
            if (decay && _weightDecay != 0) parameter.mul_(decayFactor);
            var denominator = second.div(secondCorrection).sqrt().Plus(_epsilon);
            parameter.sub_(first.div(firstCorrection).div(denominator).mul(rate));
        }
    }

    /// <summary>Writes the moments (named <c>{parameter}.exp_avg</c> / <c>.exp_avg_sq</c>) and the step count, atomically.</summary>
    public void Save(string path)
    {
        var tensors = _moments.SelectMany(m => new[] { KeyValuePair.Create(m.Key + ".exp_avg", m.Value.First), KeyValuePair.Create(m.Key + ".exp_avg_sq", m.Value.Second) });
        SafetensorsFile.Write(path, tensors, new Dictionary<string, string> { ["steps"] = Steps.ToString(System.Globalization.CultureInfo.InvariantCulture), ["format"] = "adamw" });
    }

    /// <summary>Restores what <see cref="Save"/> wrote; every moment must match a parameter's name and shape.</summary>
    /// <exception cref="CheckpointException">The file is unreadable or does not fit the parameters.</exception>
    public void Load(string path)
    {
        using var file = SafetensorsFile.Open(path);
        if (!file.Metadata.TryGetValue("steps", out string? steps) || !long.TryParse(steps, out long count))
        {
            throw new CheckpointException($"{path}: no AdamW step count in its metadata");
        }

        var byName = _parameters.ToDictionary(p => p.Name, p => p.Parameter, StringComparer.Ordinal);
        foreach (var (name, parameter) in byName)
        {
            if (!file.Tensors.ContainsKey(name + ".exp_avg")) continue; // a parameter that never had a gradient
            var first = file.ReadRaw(name + ".exp_avg").to(_momentType).DetachFromDisposeScope();
            var second = file.ReadRaw(name + ".exp_avg_sq").to(_momentType).DetachFromDisposeScope();
            if (!first.shape.SequenceEqual(parameter.shape) || !second.shape.SequenceEqual(parameter.shape))
            {
                throw new CheckpointException($"{path}: the moments of '{name}' have shape [{string.Join(", ", first.shape)}], the parameter [{string.Join(", ", parameter.shape)}]");
            }

            _moments[name] = (first, second);
        }

        var unknown = file.Tensors.Keys.Select(k => k[..k.LastIndexOf(".exp_avg", StringComparison.Ordinal)]).Where(n => !byName.ContainsKey(n)).Distinct().ToList();
        if (unknown.Count > 0) throw new CheckpointException($"{path}: moments for parameters the model does not have: {string.Join(", ", unknown.Take(10))}");
        Steps = count;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var (first, second) in _moments.Values)
        {
            first.Dispose();
            second.Dispose();
        }
    }
}
