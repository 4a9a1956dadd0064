using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using ModelCompiler.Pipeline;

namespace ModelCompiler.Cli;

/// <summary>
/// <c>modelc schedule --kind 1f1b|zbh1|dualpipe|dualpipev --stages P --microbatches M --forward F --backward B --weight W [--overlapped FB]
/// [--all-to-all A] [--json] [--png FILE]</c>: simulates a pipeline schedule and prints its makespan, per-rank bubble and peak
/// activations; with an expert-parallel all-to-all per chunk, also how much of it the schedule hides.
/// </summary>
internal static class ScheduleCommand
{
    /// <summary>The most ranks a timeline PNG draws (40 pixels of height each).</summary>
    private const int MaxDrawnRanks = 256;

    public static Command Create()
    {
        var kind = new Option<string>("--kind") { Description = "1f1b, zbh1, dualpipe or dualpipev (P stages on P/2 ranks).", Required = true };
        kind.AcceptOnlyFromAmong([.. Schedules.Names]);
        var stages = new Option<int>("--stages") { Description = "Pipeline stages P.", Required = true };
        var micro = new Option<int>("--microbatches") { Description = "Micro-batches M.", Required = true };
        var forward = new Option<double>("--forward") { Description = "F: one chunk's forward.", DefaultValueFactory = _ => 1 };
        var backward = new Option<double>("--backward") { Description = "B: one chunk's full backward.", DefaultValueFactory = _ => 2 };
        var weight = new Option<double>("--weight") { Description = "W: the weight-gradient part of B.", DefaultValueFactory = _ => 1 };
        var overlapped = new Option<double?>("--overlapped") { Description = "F&B: an overlapped forward and backward (default F + B)." };
        var allToAll = new Option<double>("--all-to-all") { Description = "A: one chunk's expert-parallel dispatch + combine; exposed in a lone F or B, overlapped in F&B.", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object." };
        var png = new Option<FileInfo?>("--png") { Description = "Draw the timeline to this PNG file." };
        var command = new Command("schedule", "Simulate a pipeline schedule: makespan, bubble and peak activations per rank.") { kind, stages, micro, forward, backward, weight, overlapped, allToAll, json, png };
        command.SetAction(result => Run(
            result.GetValue(kind)!, result.GetValue(stages), result.GetValue(micro),
            new OpCosts(result.GetValue(forward), result.GetValue(backward), result.GetValue(weight), result.GetValue(overlapped), AllToAll: result.GetValue(allToAll)),
            result.GetValue(json), result.GetValue(png)));
        return command;
    }

    private static int Run(string kindName, int stages, int microBatches, OpCosts costs, bool json, FileInfo? png)
    {
        var kind = Schedules.Parse(kindName);
        if (costs.Weight < 0 || costs.Weight > costs.Backward || costs.Forward <= 0 || costs.Backward <= 0 || !(costs.AllToAll >= 0) || double.IsInfinity(costs.AllToAll))
        {
            Console.Error.WriteLine("error: costs need F > 0, B > 0, 0 ≤ W ≤ B and a finite A ≥ 0");
            return 2;
        }

        ScheduleTable table;
        SimulationResult result, withoutAllToAll;
        try
        {
            table = Schedules.Build(kind, stages, microBatches);
            result = Simulator.Run(table, costs);
            withoutAllToAll = costs.AllToAll == 0 ? result : Simulator.Run(table, costs with { AllToAll = 0 });
        }
        catch (ArgumentException e)
        {
            // The message without .NET's " (Parameter 'stages')" suffix: the option is already named in it.
            Console.Error.WriteLine("error: " + (e.ParamName is null ? e.Message : e.Message.Replace($" (Parameter '{e.ParamName}')", string.Empty, StringComparison.Ordinal)));
            return 2;
        }

        if (png is not null && table.Ranks > MaxDrawnRanks)
        {
            Console.Error.WriteLine($"error: --png draws at most {MaxDrawnRanks} ranks (one row of pixels each); this schedule has {table.Ranks}");
            return 2;
        }

        if (png is not null) Draw(table, result, png.FullName);
        // The all-to-all a rank carries (the busiest), and how much it lengthens the step: the rest the schedule hides.
        double carried = table.Ops.Max(ops => ops.Sum(costs.AllToAllOf));
        double exposed = result.Makespan - withoutAllToAll.Makespan;
        double hidden = carried == 0 ? 0 : Math.Clamp(1 - (exposed / carried), 0, 1);
        if (json)
        {
            Console.Out.WriteLine(JsonSerializer.Serialize(new
            {
                kind = kindName, stages, microBatches, ranks = table.Ranks,
                makespan = result.Makespan, bubble = result.Bubble, maxBubble = result.Bubble.Max(), peakActivations = result.PeakActivations,
                allToAll = costs.AllToAll, allToAllPerRank = carried, exposedAllToAll = exposed, hiddenAllToAll = hidden,
            }));
            return 0;
        }

        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"{kindName}: {stages} stages on {table.Ranks} ranks, {microBatches} micro-batches, F={costs.Forward:0.###} B={costs.Backward:0.###} W={costs.Weight:0.###} F&B={costs.ForwardBackward ?? costs.Forward + costs.Backward:0.###}\n");
        text.Append(CultureInfo.InvariantCulture, $"makespan {result.Makespan:0.###}\n");
        if (costs.AllToAll > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"all-to-all A={costs.AllToAll:0.###} per chunk: {carried:0.###} per rank; it lengthens the step by {exposed:0.###} ({hidden:P0} hidden)\n");
        }

        text.Append("rank  bubble  peak activations  ops\n");
        for (int rank = 0; rank < table.Ranks; rank++)
        {
            string ops = string.Join(" ", table.Ops[rank].Take(24)) + (table.Ops[rank].Count > 24 ? " …" : string.Empty);
            text.Append(CultureInfo.InvariantCulture, $"{rank,4}  {result.Bubble[rank],6:0.###}  {result.PeakActivations[rank],16}  {ops}\n");
        }

        Console.Out.Write(text.ToString());
        if (png is not null) Console.Out.WriteLine($"timeline: {png.FullName}");
        return 0;
    }

    /// <summary>One row per rank, one box per op: forwards blue, backwards green, input-only backwards light green, W orange, F&amp;B purple.</summary>
    private static void Draw(ScheduleTable table, SimulationResult result, string path)
    {
        var plot = new ScottPlot.Plot();
        foreach (var op in result.Ops)
        {
            var color = op.Op.Kind switch
            {
                OpKind.Forward => ScottPlot.Colors.SteelBlue,
                OpKind.Backward => ScottPlot.Colors.SeaGreen,
                OpKind.BackwardInput => ScottPlot.Colors.LightGreen,
                OpKind.Weight => ScottPlot.Colors.Orange,
                _ => ScottPlot.Colors.MediumPurple,
            };
            var box = plot.Add.Rectangle(op.Start, op.End, table.Ranks - op.Rank - 0.9, table.Ranks - op.Rank - 0.1);
            box.FillColor = color;
            box.LineColor = ScottPlot.Colors.White;
        }

        plot.Title($"{table.Kind}: makespan {result.Makespan:0.##}, max bubble {result.Bubble.Max():0.##}");
        plot.XLabel("time");
        plot.YLabel("rank (0 at the top)");
        string temp = path + ".tmp.png";
        plot.SavePng(temp, 1200, 60 + (40 * table.Ranks));
        File.Move(temp, path, overwrite: true);
    }
}
