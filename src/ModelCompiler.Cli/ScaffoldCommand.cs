using System.CommandLine;
using ModelCompiler.Planning;
using ModelCompiler.Scaffolding;

namespace ModelCompiler.Cli;

/// <summary>
/// <c>modelc scaffold &lt;config.json&gt; --name X --namespace Y [--out file.cs]</c>: the annotated class equivalent to a config,
/// printed, or written to a new file (the <c>modelcompiler-model</c> template's last step).
/// </summary>
internal static class ScaffoldCommand
{
    public static Command Create()
    {
        var config = new Argument<FileInfo>("config") { Description = "A Hugging Face config.json of model_type deepseek_v3 or deepseek_v2." };
        var name = new Option<string>("--name") { Description = "The class name.", Required = true };
        var ns = new Option<string>("--namespace") { Description = "The namespace.", Required = true };
        var output = new Option<FileInfo?>("--out") { Description = "Write the class to this new file (never over an existing one) instead of printing it." };
        var command = new Command("scaffold", "Print the annotated partial class that declares the model of a config.json.") { config, name, ns, output };
        command.SetAction(result => Run(result.GetValue(config)!, result.GetValue(name)!, result.GetValue(ns)!, result.GetValue(output)));
        return command;
    }

    private static int Run(FileInfo config, string name, string ns, FileInfo? output)
    {
        if (!CliSpec.IsIdentifier(name) || !ns.Split('.').All(CliSpec.IsIdentifier))
        {
            Console.Error.WriteLine($"error: '{name}' / '{ns}' is not a valid C# class name / namespace");
            return 2;
        }

        if (!CliSpec.TryRead(config, out var spec)) return 2;
        CliSpec.ReportIssues(ModelPlanner.Plan(spec).Issues, config.FullName);
        string source = ClassScaffolder.Write(spec, name, ns, config.Name);
        if (output is null)
        {
            Console.Out.Write(source);
            return 0;
        }

        if (output.Exists)
        {
            Console.Error.WriteLine($"error: {output.FullName} exists; nothing was written over it");
            return 2;
        }

        Tool.CreateFile(output.FullName, source);
        Console.Out.WriteLine($"wrote {output.FullName}");
        return 0;
    }
}
