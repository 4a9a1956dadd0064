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
/// Two pre-training runs of the same seed that differ only in the GEMM input precision, side by side: the mean loss per
/// window of steps and how far apart they are, as a table and one chart with both curves. This is what the FP8 policy's
/// "within a few percent of FP32 on the same seed" is read from (docs/performance.md keeps the measurements).
/// </summary>
public static class CurveComparison
{
    /// <summary>
    /// Windows of <paramref name="size"/> consecutive steps over the steps both metrics files hold (the last window may be
    /// shorter), with each run's mean <c>loss</c> there.
    /// </summary>
    /// <exception cref="InvalidDataException">A line that is not a metrics object with a step and a finite loss (file and line named), or no common step.</exception>
    public static IReadOnlyList<LossWindow> Windows(string baselineMetrics, string otherMetrics, int size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        var baseline = Losses(baselineMetrics);
        var other = Losses(otherMetrics);
        var steps = baseline.Keys.Where(other.ContainsKey).Order().ToList();
        if (steps.Count == 0) throw new InvalidDataException($"{baselineMetrics} and {otherMetrics} have no step in common.");
        return steps.Chunk(size)
            .Select(window => new LossWindow(window[0], window[^1], window.Average(s => baseline[s]), window.Average(s => other[s])))
            .ToList();
    }

    /// <summary>
    /// Writes <c>report.md</c> and <c>loss.png</c> (both curves) into <paramref name="directory"/>, atomically, and returns the
    /// windows it tabulated. <paramref name="command"/> is the command line that reproduces the runs, quoted in the report.
    /// </summary>
    public static IReadOnlyList<LossWindow> WriteReport(string directory, (string Label, string Metrics) baseline, (string Label, string Metrics) other, int window, string command)
    {
        var windows = Windows(baseline.Metrics, other.Metrics, window);
        Charts.DrawRuns([baseline, other], "loss", $"training loss, mean of the last {window} steps", Path.Combine(directory, "loss.png"), window);
        var widest = windows.MaxBy(w => Math.Abs(w.Difference))!;
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"# Loss curves: {baseline.Label} and {other.Label}, the same seed");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"`{command}`");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Mean training loss per {window} steps; the difference is {other.Label}'s relative to {baseline.Label}'s.");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"| steps | {baseline.Label} | {other.Label} | difference |");
        text.AppendLine("|---|---:|---:|---:|");
        foreach (var w in windows)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {w.First}–{w.Last} | {w.Baseline:F4} | {w.Other:F4} | {Percent(w.Difference)} |");
        }

        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"Largest difference {Percent(widest.Difference)} (steps {widest.First}–{widest.Last}); last window {Percent(windows[^1].Difference)}; mean of the windows' differences {Percent(windows.Average(w => w.Difference))}.");
        text.AppendLine();
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
