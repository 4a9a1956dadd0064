using ModelCompiler.Torch.Training;

namespace ModelCompiler.Torch.Rl;

/// <summary>A verifiable reward: a score for one completion of one problem.</summary>
public interface IRewardFunction
{
    /// <summary>The name in metrics (<c>rewards/{Name}</c>).</summary>
    string Name { get; }

    /// <summary>The weight of this reward in the sum.</summary>
    double Weight { get; }

    /// <summary>The score of <paramref name="completion"/> (generated tokens, up to and including the first end token).</summary>
    double Score(Problem problem, IReadOnlyList<long> completion);
}

/// <summary>1 when the completion is exactly the correct answer followed by the end token, else 0 (truncated included).</summary>
public sealed class AccuracyReward(double weight = 1.0) : IRewardFunction
{
    /// <inheritdoc/>
    public string Name => "accuracy";

    /// <inheritdoc/>
    public double Weight => weight;

    /// <inheritdoc/>
    public double Score(Problem problem, IReadOnlyList<long> completion) => ArithmeticTasks.IsCorrect(problem, completion) ? 1 : 0;
}

/// <summary>1 when the completion is well formed — digits only, then the end token — whatever their value, else 0.</summary>
public sealed class FormatReward(double weight = 0.1) : IRewardFunction
{
    /// <inheritdoc/>
    public string Name => "format";

    /// <inheritdoc/>
    public double Weight => weight;

    /// <inheritdoc/>
    public double Score(Problem problem, IReadOnlyList<long> completion)
    {
        string text = ArithmeticTasks.Decode(completion);
        return text.Length >= 2 && text[^1] == ';' && text[..^1].All(char.IsAsciiDigit) ? 1 : 0;
    }
}
