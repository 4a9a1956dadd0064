namespace ModelCompiler.TestUtilities;

/// <summary>Paths inside this repository, found from the test binaries (never ../shared: a user's clone has no such folder).</summary>
public static class RepositoryPaths
{
    /// <summary>The folder that holds Compiler.sln.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>A path relative to the repository root.</summary>
    public static string Combine(params string[] parts) => Path.Combine([Root, .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Compiler.sln"))) return dir.FullName;
        }

        throw new InvalidOperationException("Compiler.sln not found above " + AppContext.BaseDirectory);
    }
}
