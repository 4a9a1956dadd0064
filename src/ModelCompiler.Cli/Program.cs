using System.CommandLine;
using ModelCompiler.Cli;

// modelc: the ModelCompiler command line. Each command lives in its own file; this only assembles them.
var root = new RootCommand("modelc: plan and scaffold DeepSeek-style models declared as attributed C# classes, create projects that run them, and simulate pipeline schedules.");
root.Subcommands.Add(PlanCommand.Create());
root.Subcommands.Add(ScaffoldCommand.Create());
root.Subcommands.Add(NewCommand.Create());
root.Subcommands.Add(ScheduleCommand.Create());
try
{
    return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e) when (e is IOException or UnauthorizedAccessException)
{
    // A file that cannot be read or written (a read-only folder, a full disk): one line, not a stack trace.
    Console.Error.WriteLine("error: " + e.Message);
    return 2;
}
