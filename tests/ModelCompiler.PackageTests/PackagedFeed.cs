using System.Diagnostics;
using System.Globalization;
using Xunit;

namespace ModelCompiler.PackageTests;

/// <summary>
/// Once for the test class: <c>./build.sh pack</c> into a temporary feed under a version no cache has seen, and a folder
/// outside the repository with a tool manifest holding modelc from that feed. Disposing removes both, and the version's
/// copies in the NuGet cache.
/// </summary>
public sealed class PackagedFeed : IDisposable
{
    private static readonly string[] s_packageIds =
        ["modelcompiler", "modelcompiler.torch", "modelcompiler.gpu", "modelcompiler.distributed", "modelcompiler.inference", "modelc", "modelcompiler.templates"];

    public PackagedFeed()
    {
        Repository = FindRepository();
        Root = Path.Combine(Path.GetTempPath(), $"modelcompiler-packages-{Guid.NewGuid():N}");
        Feed = Path.Combine(Root, "feed");
        Work = Path.Combine(Root, "work");
        Directory.CreateDirectory(Work);
        Version = $"0.0.1-test.{DateTime.UtcNow.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture)}.r{Guid.NewGuid().ToString("N")[..6]}";
        PackLog = Shell.Run(Repository, TimeSpan.FromMinutes(12), "bash", "build.sh", "pack", "--out", Feed, "--version", Version, "--build", Path.Combine(Root, "build"));
        PackLog.AssertSucceeded("./build.sh pack");
        Shell.Run(Work, TimeSpan.FromMinutes(2), "dotnet", "new", "tool-manifest").AssertSucceeded("dotnet new tool-manifest");
        Shell.Run(Work, TimeSpan.FromMinutes(5), "dotnet", "tool", "install", "modelc", "--version", Version, "--add-source", Feed)
            .AssertSucceeded("dotnet tool install modelc");
    }

    /// <summary>The checkout: where build.sh and the fixtures are.</summary>
    public string Repository { get; }

    /// <summary>Everything this class makes, outside the repository.</summary>
    public string Root { get; }

    /// <summary>The folder feed ./build.sh pack wrote.</summary>
    public string Feed { get; }

    /// <summary>The folder with the tool manifest, where projects are created.</summary>
    public string Work { get; }

    /// <summary>The version every package was packed under.</summary>
    public string Version { get; }

    public Shell.Result PackLog { get; }

    public string Fixture(string name) => Path.Combine(Repository, "tests", "fixtures", name);

    public void Dispose()
    {
        if (Directory.Exists(Root)) Directory.Delete(Root, recursive: true);
        string cache = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        foreach (string id in s_packageIds)
        {
            string copy = Path.Combine(cache, id, Version);
            if (Directory.Exists(copy)) Directory.Delete(copy, recursive: true);
        }
    }

    private static string FindRepository()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "build.sh")) && File.Exists(Path.Combine(dir.FullName, "Packages.slnf"))) return dir.FullName;
        }

        throw new InvalidOperationException("the repository (build.sh, Packages.slnf) was not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A command run to its end (or killed at its limit), with what it printed.</summary>
public static class Shell
{
    public sealed record Result(string Command, int ExitCode, string Output)
    {
        public void AssertSucceeded(string what) => Assert.True(ExitCode == 0, $"{what} exited with {ExitCode}:\n{Output}");
    }

    public static Result Run(string directory, TimeSpan limit, string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in args) start.ArgumentList.Add(arg);
        // The user's telemetry and first-run banners are not what these tests read.
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        string command = $"{file} {string.Join(" ", args)}";
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{command} did not finish in {limit.TotalMinutes:F0} min");
        }

        return new Result(command, process.ExitCode, stdout.Result + stderr.Result);
    }
}
