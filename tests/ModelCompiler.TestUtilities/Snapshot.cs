using System.Text;
using DiffPlex.DiffBuilder;
using DiffPlex.DiffBuilder.Model;
using Xunit.Sdk;

namespace ModelCompiler.TestUtilities;

/// <summary>
/// Snapshot files for generated sources, the dotnet/runtime baseline pattern: Snapshots/&lt;TestClass&gt;/&lt;TestName&gt;/
/// &lt;HintName&gt;.verified.cs, one file per hint name. The set of names is compared first, then each text, with line endings
/// normalised and the generator version replaced by %VERSION%. MC_UPDATE_SNAPSHOTS=1 rewrites the verified files and deletes
/// stale ones; when CI=true nothing is ever written and a missing snapshot fails.
/// </summary>
public static class Snapshot
{

    /// <summary>Checks <paramref name="files"/> (hint name → text) against the snapshots of one test.</summary>
    /// <param name="project">The test project folder, relative to the repository root.</param>
    /// <param name="testClass">The test class name.</param>
    /// <param name="testName">The test name, with theory parameters appended as _{name}={value}.</param>
    /// <param name="files">Hint name → generated text.</param>
    /// <param name="version">The generator version to replace by %VERSION%.</param>
    /// <param name="extension">The snapshot files' extension: cs for C#, ptx for PTX.</param>
    public static void Verify(string project, string testClass, string testName, IReadOnlyDictionary<string, string> files, string version, string extension = "cs")
    {
        string suffix = ".verified." + extension;
        string folder = RepositoryPaths.Combine(project, "Snapshots", testClass, Sanitize(testName));
        bool update = Environment.GetEnvironmentVariable("MC_UPDATE_SNAPSHOTS") == "1" && Environment.GetEnvironmentVariable("CI") != "true";
        var actual = files.ToDictionary(f => f.Key, f => Normalise(f.Value).Replace(version, "%VERSION%", StringComparison.Ordinal));

        if (update)
        {
            Directory.CreateDirectory(folder);
            foreach (string stale in Directory.GetFiles(folder, "*" + suffix).Where(p => !actual.ContainsKey(Path.GetFileName(p)[..^suffix.Length])))
            {
                File.Delete(stale);
            }

            foreach (var (hint, text) in actual) WriteAtomically(Path.Combine(folder, hint + suffix), text);
            return;
        }

        var expectedNames = Directory.Exists(folder)
            ? Directory.GetFiles(folder, "*" + suffix).Select(p => Path.GetFileName(p)[..^suffix.Length]).OrderBy(n => n, StringComparer.Ordinal).ToArray()
            : [];
        var actualNames = actual.Keys.OrderBy(n => n, StringComparer.Ordinal).ToArray();
        if (!expectedNames.SequenceEqual(actualNames))
        {
            throw new XunitException($"Generated files differ from the snapshots in {folder}.\n  expected: {string.Join(", ", expectedNames)}\n  actual:   {string.Join(", ", actualNames)}\n"
                + "Run the tests with MC_UPDATE_SNAPSHOTS=1 to accept the new set, then review the diff.");
        }

        var failures = new StringBuilder();
        foreach (string name in actualNames)
        {
            string path = Path.Combine(folder, name + suffix);
            string expected = Normalise(File.ReadAllText(path));
            if (expected == actual[name]) continue;
            string received = Path.Combine(folder, name + ".received." + extension);
            File.WriteAllText(received, actual[name]);
            failures.Append(UnifiedDiff(expected, actual[name], name)).Append("received: ").Append(received).Append('\n');
        }

        if (failures.Length > 0)
        {
            throw new XunitException("Generated source differs from its snapshot (MC_UPDATE_SNAPSHOTS=1 accepts it):\n" + failures);
        }
    }

    /// <summary>A unified diff with 3 lines of context.</summary>
    public static string UnifiedDiff(string expected, string actual, string name)
    {
        var diff = InlineDiffBuilder.Diff(expected, actual, ignoreWhiteSpace: false);
        var lines = diff.Lines;
        var text = new StringBuilder($"--- {name} (verified)\n+++ {name} (received)\n");
        var changed = Enumerable.Range(0, lines.Count).Where(i => lines[i].Type != ChangeType.Unchanged).ToList();
        int last = -1;
        foreach (int i in changed)
        {
            for (int j = Math.Max(i - 3, last + 1); j <= Math.Min(i + 3, lines.Count - 1); j++)
            {
                if (j > last + 1 && last >= 0 && j == Math.Max(i - 3, last + 1)) text.Append("@@\n");
                var line = lines[j];
                text.Append(line.Type switch { ChangeType.Inserted => '+', ChangeType.Deleted => '-', _ => ' ' }).Append(line.Text).Append('\n');
                last = j;
            }
        }

        return text.ToString();
    }

    private static string Normalise(string text) => text.Replace("\r\n", "\n", StringComparison.Ordinal);

    private static string Sanitize(string name) => new(name.Select(c => char.IsLetterOrDigit(c) || c is '_' or '=' or '-' or '.' ? c : '_').ToArray());

    private static void WriteAtomically(string path, string text)
    {
        string temp = path + ".tmp";
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
    }
}
