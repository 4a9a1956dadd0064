using System.CommandLine;
using ModelCompiler.Scaffolding;

namespace ModelCompiler.Cli;

/// <summary>
/// <c>modelc new &lt;dir&gt; --from &lt;config.json&gt; [--name X] [--feed F | --repository R]</c>: a ready console project for a
/// downloaded checkpoint — a csproj, the scaffolded class, and a Program with <c>plan</c>, <c>verify &lt;checkpoint-dir&gt;</c> and
/// <c>generate &lt;checkpoint-dir&gt; --prompt-ids 1,2,3</c>. The project references the ModelCompiler packages at modelc's own
/// version (the generator travels inside ModelCompiler), with a nuget.config naming the feed that holds them; with
/// <c>--repository</c> it references this repository's projects instead, for work on ModelCompiler itself.
/// </summary>
internal static class NewCommand
{
    /// <summary>The feed to use when no <c>--feed</c> is given.</summary>
    public const string FeedVariable = "MODELCOMPILER_FEED";

    public static Command Create()
    {
        var directory = new Argument<DirectoryInfo>("dir") { Description = "The folder to create (must not exist, or be empty)." };
        var from = new Option<FileInfo>("--from") { Description = "The Hugging Face config.json to declare.", Required = true };
        var name = new Option<string?>("--name") { Description = "The class and namespace name (default: from the folder name)." };
        var feed = new Option<string?>("--feed")
        {
            Description = $"The NuGet feed (a folder or a URL) that holds the ModelCompiler {Tool.Version} packages "
                + $"(default: ${FeedVariable}, else a 'feed' folder beside modelc, else the repository's artifacts/feed, else your configured sources).",
        };
        var repository = new Option<DirectoryInfo?>("--repository") { Description = "Reference this ModelCompiler checkout's projects instead of packages." };
        var command = new Command("new", "Create a console project that declares, verifies and runs the model of a config.json.") { directory, from, name, feed, repository };
        command.Validators.Add(result =>
        {
            if (result.GetResult(feed) is not null && result.GetResult(repository) is not null)
            {
                result.AddError("--feed and --repository exclude each other: packages come from a feed, projects from a repository");
            }
        });
        command.SetAction(result => Run(result.GetValue(directory)!, result.GetValue(from)!, result.GetValue(name), result.GetValue(feed), result.GetValue(repository)));
        return command;
    }

    private static int Run(DirectoryInfo directory, FileInfo config, string? name, string? feed, DirectoryInfo? repository)
    {
        name ??= Identifier(directory.Name);
        if (!CliSpec.IsIdentifier(name))
        {
            Console.Error.WriteLine($"error: '{name}' is not a valid C# name; pass --name");
            return 2;
        }

        if (File.Exists(directory.FullName))
        {
            Console.Error.WriteLine($"error: {directory.FullName} is a file; give a folder to create. Nothing was written");
            return 2;
        }

        if (directory.Exists && directory.EnumerateFileSystemInfos().Any())
        {
            Console.Error.WriteLine($"error: {directory.FullName} exists and is not empty; nothing was written");
            return 2;
        }

        string references;
        string? source = null;
        if (repository is not null)
        {
            if (!File.Exists(Path.Combine(repository.FullName, "Compiler.sln")))
            {
                Console.Error.WriteLine($"error: --repository {repository.FullName} is not a ModelCompiler checkout (it has no Compiler.sln); nothing was written");
                return 2;
            }

            references = ProjectTemplate.ProjectReferences(repository.FullName);
        }
        else
        {
            if (!TryFindFeed(feed, out source)) return 2;
            references = ProjectTemplate.PackageReferences(Tool.Version);
        }

        if (!CliSpec.TryRead(config, out var spec)) return 2;
        directory.Create();
        Tool.CreateFile(Path.Combine(directory.FullName, name + ".csproj"), ProjectTemplate.Project(references));
        Tool.CreateFile(Path.Combine(directory.FullName, name + ".cs"), ClassScaffolder.Write(spec, name, name, config.Name));
        Tool.CreateFile(Path.Combine(directory.FullName, "Program.cs"), ProjectTemplate.Program(name));
        var written = new List<string> { name + ".csproj", name + ".cs", "Program.cs" };
        if (source is not null)
        {
            Tool.CreateFile(Path.Combine(directory.FullName, "nuget.config"), ProjectTemplate.NuGetConfig(source));
            written.Add("nuget.config");
        }

        Console.Out.WriteLine($"created {directory.FullName}: {string.Join(", ", written)}");
        if (repository is null && source is null)
        {
            Console.Out.WriteLine($"  the ModelCompiler {Tool.Version} packages are restored from your configured NuGet sources (no local feed was found; see --feed)");
        }

        Console.Out.WriteLine($"  dotnet run --project {directory.FullName} -c Release -- verify <checkpoint-dir>");
        return 0;
    }

    /// <summary>
    /// The feed that holds this version's packages: the one given (which must hold them), else the first of $MODELCOMPILER_FEED,
    /// a <c>feed</c> folder beside modelc and the repository's <c>artifacts/feed</c> that does; none found is not an error.
    /// </summary>
    private static bool TryFindFeed(string? given, out string? feed)
    {
        feed = null;
        if (given is not null)
        {
            if (Uri.TryCreate(given, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https")
            {
                feed = given;
                return true;
            }

            string folder = Path.GetFullPath(given);
            if (!HoldsPackages(folder))
            {
                Console.Error.WriteLine($"error: --feed {folder} has no ModelCompiler.{Tool.Version}.nupkg (make one with ./build.sh pack); nothing was written");
                return false;
            }

            feed = folder;
            return true;
        }

        var candidates = new List<string?> { Environment.GetEnvironmentVariable(FeedVariable), Path.Combine(AppContext.BaseDirectory, "feed") };
        if (FindRepository() is { } root) candidates.Add(Path.Combine(root, "artifacts", "feed"));
        feed = candidates.Where(c => !string.IsNullOrEmpty(c)).Select(c => Path.GetFullPath(c!)).FirstOrDefault(HoldsPackages);
        return true;
    }

    private static bool HoldsPackages(string folder) =>
        Directory.Exists(folder) && Directory.EnumerateFiles(folder, "*.nupkg")
            .Any(f => string.Equals(Path.GetFileName(f), $"ModelCompiler.{Tool.Version}.nupkg", StringComparison.OrdinalIgnoreCase));

    private static string Identifier(string folder)
    {
        var parts = folder.Split(['-', '_', '.', ' '], StringSplitOptions.RemoveEmptyEntries);
        string joined = string.Concat(parts.Select(p => char.ToUpperInvariant(p[0]) + p[1..]));
        return joined.Length > 0 && char.IsDigit(joined[0]) ? "Model" + joined : joined;
    }

    private static string? FindRepository()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Compiler.sln"))) return dir.FullName;
        }

        return null;
    }
}
