using System.Reflection;

namespace ModelCompiler.Cli;

/// <summary>What modelc knows about itself, and how it writes a file it creates.</summary>
internal static class Tool
{
    /// <summary>The package version, as <c>modelc --version</c> prints it (the build leaves the commit out of it).</summary>
    public static string Version { get; } =
        typeof(Tool).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";

    /// <summary>Writes a new file through a temporary beside it; a file already there is never replaced (IOException).</summary>
    public static void CreateFile(string path, string text)
    {
        if (File.Exists(path)) throw new IOException($"{path} exists; nothing was written over it");
        string temp = path + ".tmp-" + Environment.ProcessId;
        try
        {
            File.WriteAllText(temp, text);
            File.Move(temp, path);
        }
        finally
        {
            File.Delete(temp);
        }
    }
}
