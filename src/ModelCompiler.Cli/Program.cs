using System.CommandLine;
using ModelCompiler.Cli;

// modelc: the ModelCompiler command line. Each command lives in its own file; this only assembles them.
var root = new RootCommand("modelc: plan, scaffold and (soon) build DeepSeek-style models declared as attributed C# classes.");
root.Subcommands.Add(PlanCommand.Create());
root.Subcommands.Add(ScaffoldCommand.Create());
root.Subcommands.Add(NewCommand.Create());
root.Subcommands.Add(ScheduleCommand.Create());
return root.Parse(args).Invoke();
