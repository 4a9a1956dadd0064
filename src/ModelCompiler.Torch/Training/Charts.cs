using System.Text.Json;

namespace ModelCompiler.Torch.Training;

/// <summary>PNG charts of a run's metrics.jsonl (ScottPlot), for the Markdown report.</summary>
public static class Charts
{
    /// <summary>
    /// Draws one chart per (title, series…) into <paramref name="directory"/>; each series is a metrics key plotted against
    /// <c>step</c>. Returns the file names written. Steps missing a key are skipped.
    /// </summary>
    public static IReadOnlyList<string> Draw(string metricsPath, string directory, IEnumerable<(string File, string Title, string[] Keys)> charts)
    {
        var rows = Rows(metricsPath).Select(r => r.Row).ToList();
        var written = new List<string>();
        foreach (var (file, title, keys) in charts)
        {
            var plot = new ScottPlot.Plot();
            foreach (string key in keys) AddSeries(plot, rows, key, key);
            Save(plot, title, Path.Combine(directory, file));
            written.Add(file);
        }

        return written;
    }

    /// <summary>
    /// One chart of metric <paramref name="key"/> from several runs' metrics.jsonl, one series per run, named by its label,
    /// each point the mean of the last <paramref name="average"/> steps (a noisy per-step loss hides a few percent).
    /// </summary>
    public static void DrawRuns(IEnumerable<(string Label, string MetricsPath)> runs, string key, string title, string path, int average = 1)
    {
        var plot = new ScottPlot.Plot();
        foreach (var (label, metricsPath) in runs) AddSeries(plot, Rows(metricsPath).Select(r => r.Row).ToList(), key, label, average);
        Save(plot, title, path);
    }

    /// <summary>
    /// The objects of a metrics.jsonl with their line numbers, one per non-empty line; a torn last line (a run killed while
    /// writing it) is left out and reported to <paramref name="notice"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">A complete line that is not a JSON object, named by file and line.</exception>
    internal static List<(int Line, JsonElement Row)> Rows(string metricsPath, Action<string>? notice = null)
    {
        var rows = new List<(int, JsonElement)>();
        int number = 0;
        foreach (string line in RunFolder.ReadMetricsLines(metricsPath, notice))
        {
            number++;
            if (line.Length == 0) continue;
            try
            {
                using var document = JsonDocument.Parse(line);
                if (document.RootElement.ValueKind != JsonValueKind.Object) throw new JsonException($"a {document.RootElement.ValueKind}, not an object");
                rows.Add((number, document.RootElement.Clone()));
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{metricsPath}, line {number}: not a metrics line ({e.Message}).", e);
            }
        }

        return rows;
    }

    private static void AddSeries(ScottPlot.Plot plot, List<JsonElement> rows, string key, string label, int average = 1)
    {
        var points = rows.Where(r => r.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number)
            .Select(r => (Step: r.GetProperty("step").GetDouble(), Value: r.GetProperty(key).GetDouble())).ToList();
        if (points.Count == 0) return;
        var values = new double[points.Count];
        double sum = 0;
        for (int i = 0; i < points.Count; i++)
        {
            sum += points[i].Value;
            if (i >= average) sum -= points[i - average].Value;
            values[i] = sum / Math.Min(i + 1, average);
        }

        var line = plot.Add.Scatter(points.Select(p => p.Step).ToArray(), values);
        line.MarkerSize = 0;
        line.LegendText = label;
    }

    // Written beside the target and moved over it, so that a reader never sees half a PNG.
    private static void Save(ScottPlot.Plot plot, string title, string path)
    {
        plot.Title(title);
        plot.XLabel("step");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);   // every chart here falls or settles to the right: keep its end in view
        string temp = path + ".tmp.png";
        plot.SavePng(temp, 640, 360);
        File.Move(temp, path, overwrite: true);
    }
}
