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
        var rows = File.ReadLines(metricsPath).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
        var written = new List<string>();
        foreach (var (file, title, keys) in charts)
        {
            var plot = new ScottPlot.Plot();
            foreach (string key in keys)
            {
                var points = rows.Where(r => r.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number)
                    .Select(r => (Step: r.GetProperty("step").GetDouble(), Value: r.GetProperty(key).GetDouble())).ToList();
                if (points.Count == 0) continue;
                var line = plot.Add.Scatter(points.Select(p => p.Step).ToArray(), points.Select(p => p.Value).ToArray());
                line.MarkerSize = 0;
                line.LegendText = key;
            }

            plot.Title(title);
            plot.XLabel("step");
            plot.ShowLegend();
            string path = Path.Combine(directory, file), temp = path + ".tmp.png";
            plot.SavePng(temp, 640, 360);
            File.Move(temp, path, overwrite: true);
            written.Add(file);
        }

        return written;
    }
}
