using System.Diagnostics.CodeAnalysis;
using ModelCompiler.HuggingFace;
using ModelCompiler.Planning;

namespace ModelCompiler.Cli;

/// <summary>What the commands share: reading a config with a clear error, and printing validation issues to stderr.</summary>
internal static class CliSpec
{
    public static bool TryRead(FileInfo config, [NotNullWhen(true)] out ModelSpec? spec)
    {
        try
        {
            spec = HuggingFaceConfig.Read(config.FullName);
            return true;
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            spec = null;
            return false;
        }
    }

    public static void ReportIssues(IEnumerable<SpecIssue> issues, string source)
    {
        foreach (var issue in issues) Console.Error.WriteLine($"{source}: {issue}");
    }

    public static bool IsIdentifier(string text) =>
        text.Length > 0 && (char.IsLetter(text[0]) || text[0] == '_') && text.All(c => char.IsLetterOrDigit(c) || c == '_');
}
