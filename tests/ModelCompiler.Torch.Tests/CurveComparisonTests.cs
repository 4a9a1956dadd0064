using System.Globalization;
using ModelCompiler.Torch.Training;
using Xunit;

namespace ModelCompiler.Torch.Tests;

/// <summary>The same-seed comparison of two runs' loss curves (TinySeek's <c>compare</c>): windows, report and chart.</summary>
public sealed class CurveComparisonTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("curves-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Windows_hold_each_runs_mean_loss_over_the_steps_both_have()
    {
        var random = new Random();
        double[] baseline = [.. Enumerable.Range(0, 10).Select(_ => 1 + random.NextDouble())];
        double[] other = [.. Enumerable.Range(0, 9).Select(_ => 1 + random.NextDouble())];   // one step fewer: a run cut short
        var windows = CurveComparison.Windows(Metrics("a", baseline), Metrics("b", other), 4);

        Assert.Equal([(1, 4), (5, 8), (9, 9)], windows.Select(w => (w.First, w.Last)));
        Assert.Equal(baseline[4..8].Average(), windows[1].Baseline, 12);
        Assert.Equal(other[4..8].Average(), windows[1].Other, 12);
        Assert.Equal((other[8] / baseline[8]) - 1, windows[2].Difference, 12);
    }

    [Fact]
    public void The_report_has_a_row_per_window_the_largest_difference_and_a_chart()
    {
        string a = Metrics("fp32", [2.0, 2.0, 1.0, 1.0]), b = Metrics("fp8", [2.0, 2.2, 1.0, 0.9]);
        var windows = CurveComparison.WriteReport(_folder, ("FP32", a), [("FP8", b)], 2, "compare --steps 4");
        string report = File.ReadAllText(Path.Combine(_folder, "report.md"));
        Assert.Equal(2, Assert.Single(windows).Count);

        Assert.Contains("| 1–2 | 2.0000 | 2.1000 | +5.0 % |", report);
        Assert.Contains("| 3–4 | 1.0000 | 0.9500 | −5.0 % |", report);
        Assert.Contains("`compare --steps 4`", report);
        Assert.Contains("FP8: largest difference +5.0 % (steps 1–2)", report);
        byte[] png = File.ReadAllBytes(Path.Combine(_folder, "loss.png"));
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
        Assert.DoesNotContain(Directory.GetFiles(_folder), f => f.Contains(".tmp", StringComparison.Ordinal));
    }

    [Fact]
    public void A_yardstick_run_gets_its_own_columns_over_the_steps_every_run_holds()
    {
        var random = new Random();
        double[] baseline = [.. Enumerable.Range(0, 6).Select(_ => 1 + random.NextDouble())];
        double[] format = [.. baseline.Select(x => x * 1.1)];
        double[] reordered = [.. baseline[..5].Select(x => x * 0.98)];   // cut short: the last step is left out of every column
        var windows = CurveComparison.WriteReport(_folder, ("FP32", Metrics("fp32", baseline)),
            [("FP8", Metrics("fp8", format)), ("FP32, 1 thread", Metrics("reordered", reordered))], 3, "compare", "The yardstick.");
        string report = File.ReadAllText(Path.Combine(_folder, "report.md"));

        Assert.Equal(2, windows.Count);
        Assert.All(windows, run => Assert.Equal([(1, 3), (4, 5)], run.Select(w => (w.First, w.Last))));
        Assert.Equal(0.1, windows[0][1].Difference, 12);
        Assert.Equal(-0.02, windows[1][1].Difference, 12);
        Assert.Contains("| steps | FP32 | FP8 | difference | FP32, 1 thread | difference |", report);
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"| 4–5 | {baseline[3..5].Average():F4} | {format[3..5].Average():F4} | +10.0 % | {reordered[3..5].Average():F4} | −2.0 % |"), report);
        Assert.Contains("FP32, 1 thread: largest difference −2.0 %", report);
        Assert.Contains("The yardstick.", report);
    }

    [Fact]
    public void A_line_that_is_not_metrics_is_refused_with_its_file_and_line()
    {
        string good = Metrics("good", [1.0, 1.0]);
        string bad = Path.Combine(_folder, "bad.jsonl");
        File.WriteAllLines(bad, ["{\"step\":1,\"loss\":1.0}", "{\"step\":2,\"loss\":1.0}", "{\"step\":3,\"los"]);

        var e = Assert.Throws<InvalidDataException>(() => CurveComparison.Windows(good, bad, 2));
        Assert.Contains("bad.jsonl, line 3", e.Message);
    }

    [Fact]
    public void Runs_without_a_common_step_are_refused()
    {
        string early = Metrics("early", [1.0]);
        string late = Path.Combine(_folder, "late.jsonl");
        File.WriteAllLines(late, ["{\"step\":5,\"loss\":1.0}"]);

        Assert.Throws<InvalidDataException>(() => CurveComparison.Windows(early, late, 1));
    }

    private string Metrics(string name, double[] losses)
    {
        string path = Path.Combine(_folder, name + ".jsonl");
        File.WriteAllLines(path, losses.Select((loss, i) => string.Create(CultureInfo.InvariantCulture, $"{{\"step\":{i + 1},\"loss\":{loss:R},\"mtp_loss\":0}}")));
        return path;
    }
}
