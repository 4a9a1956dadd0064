using System.Globalization;
using System.Text;
using System.Text.Json;
using ModelCompiler.Torch.Checkpoints;

namespace ModelCompiler.Torch.Training;

/// <summary>Mean training loss of two runs over the steps <see cref="First"/>…<see cref="Last"/>.</summary>
/// <param name="First">First step of the window.</param>
/// <param name="Last">Last step of the window.</param>
/// <param name="Baseline">Mean loss of the baseline run (FP32).</param>
/// <param name="Other">Mean loss of the compared run.</param>
public sealed record LossWindow(int First, int Last, double Baseline, double Other)
{
    /// <summary>How far the compared run's mean is from the baseline's, relative to it (+0.05: 5 % higher).</summary>
    public double Difference => (Other / Baseline) - 1;
}

/// <summary>
/// Pre-training runs of the same seed side by side: a baseline (FP32) and runs that differ from it in one thing — the GEMM
/// input precision, or only the order of some sums (another thread count) — with the mean loss per window of steps and how
/// far each run is from the baseline, as a table and one chart with every curve. This is what the FP8 policy's "within a
/// few percent of FP32 on the same seed" is read from, next to how far FP32 moves from itself (docs/performance.md keeps
/// the measurements).
/// </summary>
public static class CurveComparison
{
    /// <summary>
    /// Windows of <paramref name="size"/> consecutive steps over the steps both metrics files hold (the last window may be
    /// shorter), with each run's mean <c>loss</c> there.
    /// </summary>
    /// <exception cref="InvalidDataException">A line that is not a metrics object with a step and a finite loss (file and line named), or no common step.</exception>
    public static IReadOnlyList<LossWindow> Windows(string baselineMetrics, string otherMetrics, int size) =>
        Windows(baselineMetrics, [otherMetrics], size)[0];

    /// <summary>
    /// For each of <paramref name="otherMetrics"/>, its windows against the baseline: the same windows of
    /// <paramref name="size"/> steps for every run, over the steps all of them hold.
    /// </summary>
    /// <exception cref="InvalidDataException">A line that is not a metrics object with a step and a finite loss (file and line named), or no common step.</exception>
    public static IReadOnlyList<IReadOnlyList<LossWindow>> Windows(string baselineMetrics, IReadOnlyList<string> otherMetrics, int size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        ArgumentOutOfRangeException.ThrowIfZero(otherMetrics.Count);
        var baseline = Losses(baselineMetrics);
        var others = otherMetrics.Select(Losses).ToList();
        var steps = baseline.Keys.Where(step => others.All(other => other.ContainsKey(step))).Order().ToList();
        if (steps.Count == 0) throw new InvalidDataException($"{baselineMetrics} and {string.Join(", ", otherMetrics)} have no step in common.");
        var chunks = steps.Chunk(size).ToList();
        return others
            .Select(other => (IReadOnlyList<LossWindow>)chunks
                .Select(window => new LossWindow(window[0], window[^1], window.Average(s => baseline[s]), window.Average(s => other[s])))
                .ToList())
            .ToList();
    }

    /// <summary>
    /// Writes <c>report.md</c> and <c>loss.png</c> (every curve) into <paramref name="directory"/>, atomically, and returns
    /// each of <paramref name="others"/>' windows against <paramref name="baseline"/>. <paramref name="command"/> is the
    /// command line that reproduces the runs, quoted in the report; <paramref name="note"/>, if any, follows the table.
    /// </summary>
    public static IReadOnlyList<IReadOnlyList<LossWindow>> WriteReport(
        string directory, (string Label, string Metrics) baseline, IReadOnlyList<(string Label, string Metrics)> others, int window, string command, string? note = null)
    {
        var windows = Windows(baseline.Metrics, others.Select(o => o.Metrics).ToList(), window);
        Charts.DrawRuns([baseline, .. others], "loss", $"training loss, mean of the last {window} steps", Path.Combine(directory, "loss.png"), window);
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"# Loss curves of one seed: {baseline.Label}; {string.Join("; ", others.Select(o => o.Label))}");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"`{command}`");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Mean training loss per {window} steps; each difference is the run's relative to {baseline.Label}.");
        text.AppendLine();
        text.Append(CultureInfo.InvariantCulture, $"| steps | {baseline.Label} |");
        foreach (var other in others) text.Append(CultureInfo.InvariantCulture, $" {other.Label} | difference |");
        text.AppendLine().Append("|---|---:|");
        foreach (var _ in others) text.Append("---:|---:|");
        text.AppendLine();
        for (int row = 0; row < windows[0].Count; row++)
        {
            var span = windows[0][row];
            text.Append(CultureInfo.InvariantCulture, $"| {span.First}–{span.Last} | {span.Baseline:F4} |");
            foreach (var run in windows) text.Append(CultureInfo.InvariantCulture, $" {run[row].Other:F4} | {Percent(run[row].Difference)} |");
            text.AppendLine();
        }

        text.AppendLine();
        for (int run = 0; run < others.Count; run++)
        {
            var widest = windows[run].MaxBy(w => Math.Abs(w.Difference))!;
            text.AppendLine(CultureInfo.InvariantCulture,
                $"{others[run].Label}: largest difference {Percent(widest.Difference)} (steps {widest.First}–{widest.Last}); last window {Percent(windows[run][^1].Difference)}; mean of the windows' differences {Percent(windows[run].Average(w => w.Difference))}.");
            text.AppendLine();
        }

        if (note is not null)
        {
            text.AppendLine(note);
            text.AppendLine();
        }

        text.AppendLine("![loss](loss.png)");
        AtomicFile.WriteAllText(Path.Combine(directory, "report.md"), text.ToString());
        return windows;
    }

    private static string Percent(double value) => value.ToString("+0.0 %;−0.0 %;0.0 %", CultureInfo.InvariantCulture);

    private static Dictionary<int, double> Losses(string metricsPath)
    {
        var losses = new Dictionary<int, double>();
        foreach (var (line, row) in Charts.Rows(metricsPath))
        {
            try
            {
                double loss = row.GetProperty("loss").GetDouble();
                if (!double.IsFinite(loss)) throw new FormatException("the loss is not finite");
                losses[row.GetProperty("step").GetInt32()] = loss;
            }
            catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"{metricsPath}, line {line}: not a metrics line with a step and a finite loss ({e.Message}).", e);
            }
        }

        return losses;
    }
}
