namespace ModelCompiler.Torch.Training;

/// <summary>
/// TinySeek's corpus, generated in code and checkable by rule: digit sorting (<c>50381&gt;01358;</c>) and addition
/// (<c>42+39=81;</c>, two-digit operands) in a 15-symbol character vocabulary. A configurable share of answers is systematically wrong — the
/// last two answer digits swapped (or, if equal, the last one incremented) — like noisy web data: imitation learns a flawed
/// model that reinforcement learning with a verifiable reward can then correct.
/// </summary>
public static class ArithmeticTasks
{
    /// <summary>The symbols, by token id: padding, end, the two prompt separators, plus, then the digits.</summary>
    public const string Symbols = "_;>+=0123456789";

    /// <summary>Padding token id.</summary>
    public const long Pad = 0;

    /// <summary>End-of-answer token id.</summary>
    public const long End = 1;

    /// <summary>Number of symbols.</summary>
    public static int VocabularySize => Symbols.Length;

    /// <summary>Token ids of <paramref name="text"/>.</summary>
    /// <exception cref="ArgumentException">A character outside <see cref="Symbols"/>.</exception>
    public static long[] Encode(string text) => text.Select(c => Symbols.IndexOf(c) is var i and >= 0 ? (long)i
        : throw new ArgumentException($"'{c}' is not in TinySeek's vocabulary \"{Symbols}\"", nameof(text))).ToArray();

    /// <summary>The text of <paramref name="tokens"/> (ids outside the vocabulary as '?').</summary>
    public static string Decode(IEnumerable<long> tokens) => new(tokens.Select(t => t >= 0 && t < Symbols.Length ? Symbols[(int)t] : '?').ToArray());

    /// <summary>Problem number <paramref name="index"/> of the stream seeded by <paramref name="seed"/>: the same pair always gives the same problem.</summary>
    /// <param name="seed">The stream.</param>
    /// <param name="index">Position in the stream (the data position a checkpoint records).</param>
    /// <param name="noise">Probability that the answer is the systematically wrong one.</param>
    public static Problem Draw(long seed, long index, double noise)
    {
        var random = new Random(StreamSeed(seed, index));
        Problem problem;
        if (random.Next(2) == 0)
        {
            string digits = new(Enumerable.Range(0, random.Next(3, 8)).Select(_ => (char)('0' + random.Next(10))).ToArray());
            problem = new Problem(digits + ">", new string(digits.Order().ToArray()));
        }
        else
        {
            int a = random.Next(100), b = random.Next(100);
            problem = new Problem($"{a}+{b}=", (a + b).ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        return random.NextDouble() < noise ? problem with { Answer = Corrupt(problem.Answer) } : problem;
    }

    /// <summary>A deterministic 31-bit seed for (stream, index) (SplitMix64; HashCode is randomised per process).</summary>
    public static int StreamSeed(long seed, long index)
    {
        ulong z = unchecked(((ulong)seed * 0x9E3779B97F4A7C15UL) + (ulong)index + 0x632BE59BD9B4E019UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return (int)((z ^ (z >> 31)) & 0x7FFFFFFF);
    }

    /// <summary>The systematic error: swap the last two characters, or increment the last digit when they are equal.</summary>
    public static string Corrupt(string answer)
    {
        if (answer.Length < 2) return ((char)('0' + ((answer[0] - '0' + 1) % 10))).ToString();
        char last = answer[^1], before = answer[^2];
        return before != last ? answer[..^2] + last + before : answer[..^1] + (char)('0' + ((last - '0' + 1) % 10));
    }

    /// <summary>Whether <paramref name="completion"/> (the generated tokens) is exactly the correct answer followed by the end token.</summary>
    public static bool IsCorrect(Problem problem, IReadOnlyList<long> completion) =>
        Decode(completion) == problem.CorrectAnswer + ";";
}

/// <summary>A problem: the prompt (ending in '&gt;' or '='), the answer shown in the data, and the correct answer.</summary>
/// <param name="Prompt">The prompt text.</param>
/// <param name="Answer">The answer as the data shows it (possibly corrupted).</param>
public sealed record Problem(string Prompt, string Answer)
{
    /// <summary>The correct answer, computed from the prompt.</summary>
    public string CorrectAnswer => Prompt.EndsWith('>')
        ? new string(Prompt[..^1].Order().ToArray())
        : Prompt[..^1].Split('+').Sum(int.Parse).ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Whether the data's answer is correct.</summary>
    public bool IsClean => Answer == CorrectAnswer;

    /// <summary>The full training text: prompt, answer, end.</summary>
    public string Text => Prompt + Answer + ";";
}
