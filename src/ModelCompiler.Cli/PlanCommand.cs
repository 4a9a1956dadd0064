using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;
using Spectre.Console;

namespace ModelCompiler.Cli;

/// <summary>
/// <c>modelc plan &lt;config.json&gt; [--json] [--kernels]</c>: the plan of a Hugging Face DeepSeek config, as a table or one JSON
/// object; with <c>--kernels</c>, its kernel plan.
/// </summary>
internal static class PlanCommand
{
    private static readonly JsonSerializerOptions s_json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
    };

    public static Command Create()
    {
        var config = new Argument<FileInfo>("config") { Description = "A Hugging Face config.json of model_type deepseek_v3 or deepseek_v2." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var kernels = new Option<bool>("--kernels") { Description = "Print the kernel plan instead: each GPU kernel, its geometry, and why any is left out." };
        var command = new Command("plan", "Print the plan of a config.json: parameters, KV cache, FLOPs, memory, pipeline stages.") { config, json, kernels };
        command.SetAction(result => Run(result.GetValue(config)!, result.GetValue(json), result.GetValue(kernels)));
        return command;
    }

    private static int Run(FileInfo config, bool json, bool kernels)
    {
        if (!CliSpec.TryRead(config, out var spec)) return 2;
        var result = ModelPlanner.Plan(spec);
        CliSpec.ReportIssues(result.Issues, config.FullName);
        if (result.Plan is not { } plan) return 1;

        if (json && kernels)
        {
            Console.Out.WriteLine(JsonSerializer.Serialize(plan.Kernels, s_json));
            return 0;
        }

        if (json)
        {
            Console.Out.WriteLine(JsonSerializer.Serialize(new { model = spec, plan.TotalParameters, plan.ActivatedParameters, plan.MtpParameters, plan.KvCacheBytesPerToken, plan.MhaKvCacheBytesPerToken, plan = plan }, s_json));
            return 0;
        }

        var table = new Table().Border(TableBorder.Rounded).Title(Markup.Escape(config.FullName));
        table.AddColumn("Section").AddColumn(kernels ? "Kernel" : "Quantity").AddColumn(kernels ? new TableColumn("What it does, or why it is left out") : new TableColumn("Value").RightAligned());
        string? section = null;
        foreach (var row in kernels ? PlanReport.KernelRows(plan.Kernels) : PlanReport.Rows(spec, plan))
        {
            table.AddRow(row.Section == section ? string.Empty : $"[bold]{Markup.Escape(row.Section)}[/]", Markup.Escape(row.Name), Markup.Escape(row.Value));
            section = row.Section;
        }

        AnsiConsole.Write(table);
        return 0;
    }
}
