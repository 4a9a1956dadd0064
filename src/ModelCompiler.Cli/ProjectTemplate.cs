using System.Security;

namespace ModelCompiler.Cli;

/// <summary>
/// The files of a model project, as <c>modelc new</c> writes them. The <c>modelcompiler-model</c> template
/// (templates/ModelCompiler.Templates) carries the same files with the name and version as placeholders; the package test
/// creates a project both ways and requires them to be equal.
/// </summary>
internal static class ProjectTemplate
{
    public static string Project(string references) => $"""
        <Project Sdk="Microsoft.NET.Sdk">
          <!-- A ModelCompiler model project: the class beside this file declares the model (scaffolded from its config.json), Program.cs runs it. -->
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
        {references}
          </ItemGroup>
        </Project>

        """;

    /// <summary>ModelCompiler carries the generator and its code fixes; ModelCompiler.Torch is what the generated model runs on.</summary>
    public static string PackageReferences(string version) => $"""
            <PackageReference Include="ModelCompiler" Version="{version}" />
            <PackageReference Include="ModelCompiler.Torch" Version="{version}" />
        """;

    /// <summary>A checkout's projects, with the generator as an analyzer: what a project reference needs spelled out.</summary>
    public static string ProjectReferences(string repository) => $"""
            <ProjectReference Include="{Path.Combine(repository, "src", "ModelCompiler", "ModelCompiler.csproj")}" />
            <ProjectReference Include="{Path.Combine(repository, "src", "ModelCompiler.Torch", "ModelCompiler.Torch.csproj")}" />
            <ProjectReference Include="{Path.Combine(repository, "generators", "ModelCompiler.Generators", "ModelCompiler.Generators.csproj")}"
                              OutputItemType="Analyzer" ReferenceOutputAssembly="false" />
        """;

    public static string Program(string name) => $"""
        // plan | verify <checkpoint-dir> | generate <checkpoint-dir> --prompt-ids 1,2,3 [--max-new-tokens 12] [--bench]
        return {name}.{name}.Module.RunCommands(args);

        """;

    /// <summary>The feed that holds the ModelCompiler packages, added to the sources the user already has.</summary>
    public static string NuGetConfig(string feed) => $"""
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <!-- The ModelCompiler packages come from this feed; everything else from the NuGet sources you already use. -->
          <packageSources>
            <add key="modelcompiler" value="{SecurityElement.Escape(feed)}" />
          </packageSources>
        </configuration>

        """;
}
