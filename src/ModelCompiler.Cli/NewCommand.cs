using System.CommandLine;
using ModelCompiler.Scaffolding;

namespace ModelCompiler.Cli;

/// <summary>
/// <c>modelc new &lt;dir&gt; --from &lt;config.json&gt; [--name X]</c>: a ready console project for a downloaded checkpoint — a csproj
/// referencing this repository's libraries and the generator (as an analyzer) by path, the scaffolded class, and a Program
/// with <c>plan</c>, <c>verify &lt;checkpoint-dir&gt;</c> and <c>generate &lt;checkpoint-dir&gt; --prompt-ids 1,2,3</c>.
/// </summary>
internal static class NewCommand
{
    public static Command Create()
    {
        var directory = new Argument<DirectoryInfo>("dir") { Description = "The folder to create (must not exist, or be empty)." };
        var from = new Option<FileInfo>("--from") { Description = "The Hugging Face config.json to declare.", Required = true };
        var name = new Option<string?>("--name") { Description = "The class and namespace name (default: from the folder name)." };
        var repository = new Option<DirectoryInfo?>("--repository") { Description = "This repository's root (default: found above modelc)." };
        var command = new Command("new", "Create a console project that declares, verifies and runs the model of a config.json.") { directory, from, name, repository };
        command.SetAction(result => Run(result.GetValue(directory)!, result.GetValue(from)!, result.GetValue(name), result.GetValue(repository)));
        return command;
    }

    private static int Run(DirectoryInfo directory, FileInfo config, string? name, DirectoryInfo? repository)
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

        string? root = repository?.FullName ?? FindRepository();
        if (root is null || !File.Exists(Path.Combine(root, "Compiler.sln")))
        {
            Console.Error.WriteLine("error: the ModelCompiler repository was not found above modelc; pass --repository <path>");
            return 2;
        }

        if (!CliSpec.TryRead(config, out var spec)) return 2;
        directory.Create();
        string project = $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <!-- Made by `modelc new` from {config.FullName}. -->
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
                <ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally>
                <!-- The generated code is written to obj/Generated so that you can read it. -->
                <EmitCompilerGeneratedFiles>true</EmitCompilerGeneratedFiles>
                <CompilerGeneratedFilesOutputPath>obj/Generated</CompilerGeneratedFilesOutputPath>
              </PropertyGroup>
              <ItemGroup>
                <ProjectReference Include="{Path.Combine(root, "src", "ModelCompiler", "ModelCompiler.csproj")}" />
                <ProjectReference Include="{Path.Combine(root, "src", "ModelCompiler.Torch", "ModelCompiler.Torch.csproj")}" />
                <ProjectReference Include="{Path.Combine(root, "generators", "ModelCompiler.Generators", "ModelCompiler.Generators.csproj")}"
                                  OutputItemType="Analyzer" ReferenceOutputAssembly="false" />
              </ItemGroup>
            </Project>

            """;
        string program = $"""
            // plan | verify <checkpoint-dir> | generate <checkpoint-dir> --prompt-ids 1,2,3 [--max-new-tokens 12] [--bench]
            return {name}.{name}.Module.RunCommands(args);

            """;
        Write(Path.Combine(directory.FullName, name + ".csproj"), project);
        Write(Path.Combine(directory.FullName, name + ".cs"), ClassScaffolder.Write(spec, name, name, config.Name));
        Write(Path.Combine(directory.FullName, "Program.cs"), program);
        Console.Out.WriteLine($"created {directory.FullName}: {name}.csproj, {name}.cs, Program.cs");
        Console.Out.WriteLine($"  dotnet run --project {directory.FullName} -c Release -- verify <checkpoint-dir>");
        return 0;
    }

    private static void Write(string path, string text)
    {
        string temp = path + ".tmp";
        File.WriteAllText(temp, text);
        File.Move(temp, path);
    }

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
