using System.Globalization;
using System.Text;
using System.Text.Json;

namespace ModelCompiler.Gpu.Benchmarks;

/// <summary>The one table: our time, rate, share of the measured ceiling, PyTorch eager and torch.compile, speed-ups, error.</summary>
internal static class Table
{
    public static void Print(IReadOnlyList<Row> rows, JsonElement? torch, string device)
    {
        double copy = torch is { } t && t.TryGetProperty("copy_tbps", out var c) ? c.GetDouble() : double.NaN;
        double peak = torch is { } u && u.TryGetProperty("bf16_tflops", out var p) ? p.GetDouble() : double.NaN;
        double fp8Peak = torch is { } v && v.TryGetProperty("fp8_tflops", out var q) ? q.GetDouble() : double.NaN;
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"{device}; PyTorch copy {copy:F2} TB/s, bf16 GEMM {peak:F0} TFLOP/s, FP8 GEMM with per-tensor scales (torch._scaled_mm) {fp8Peak:F0} TFLOP/s (the ceilings below)");
        text.AppendLine();
        text.AppendLine("| op | shape | ours ms | rate | of ceiling | eager ms | compile ms | × eager | × compile | ‖err‖/‖ref‖ |");
        text.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var row in rows)
        {
            if (double.IsNaN(row.Ms)) // a correctness check without a timing
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"| {row.Op} | {row.Shape} | – | – | – | – | – | – | – | {row.Error:E1}{(row.Error <= row.Tolerance ? string.Empty : " FAIL")} |");
                continue;
            }

            double seconds = row.Ms * 1e-3;
            bool compute = row.Flops > 0 && row.TorchKey != "mla_decode_16h"; // 16 heads: memory-bound, judged by bandwidth
            string rate = compute ? $"{row.Flops / seconds / 1e12:F0} TFLOP/s" : $"{row.Bytes / seconds / 1e12:F2} TB/s";
            double ceiling = compute ? row.Flops / seconds / 1e12 / (row.TorchKey == "fp8_gemm" ? fp8Peak : peak) : row.Bytes / seconds / 1e12 / copy;
            if (row.TorchKey.StartsWith("mla", StringComparison.Ordinal))
            {
                rate += $", {row.Bytes / seconds / 1e12:F2} TB/s";
            }

            double eager = Torch(torch, row.TorchKey, "eager_ms"), compiled = Torch(torch, row.TorchKey, "compile_ms");
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {row.Op} | {row.Shape} | {row.Ms:F4} | {rate} | {Percent(ceiling)} | {Ms(eager)} | {Ms(compiled)} | {Ratio(eager / row.Ms)} | {Ratio(compiled / row.Ms)} | {row.Error:E1}{(row.Error <= row.Tolerance ? string.Empty : " FAIL")} |");
        }

        Console.WriteLine(text.ToString());
    }

    private static double Torch(JsonElement? torch, string key, string field) =>
        torch is { } t && t.TryGetProperty(key, out var op) && op.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : double.NaN;

    private static string Ms(double value) => double.IsNaN(value) ? "–" : value.ToString("F4", CultureInfo.InvariantCulture);

    private static string Ratio(double value) => double.IsNaN(value) ? "–" : value.ToString("F2", CultureInfo.InvariantCulture) + "×";

    private static string Percent(double value) => double.IsNaN(value) ? "–" : value.ToString("P0", CultureInfo.InvariantCulture);
}
