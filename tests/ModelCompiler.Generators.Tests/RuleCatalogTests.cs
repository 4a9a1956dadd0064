using System.Text.RegularExpressions;
using ModelCompiler.Planning;
using ModelCompiler.TestUtilities;
using Xunit;

namespace ModelCompiler.Generators.Tests;

/// <summary>Every rule has its documentation page and its release-tracking row, and ids are unique and in range.</summary>
public sealed class RuleCatalogTests
{
    [Fact]
    public void Every_rule_has_a_docs_page_and_a_release_row()
    {
        string unshipped = File.ReadAllText(RepositoryPaths.Combine("generators", "ModelCompiler.Generators", "AnalyzerReleases.Unshipped.md"));
        var rows = Regex.Matches(unshipped, @"^(MC\d{4}) \| (MC\.\w+) \| (\w+) \|", RegexOptions.Multiline).ToDictionary(m => m.Groups[1].Value, m => (m.Groups[2].Value, m.Groups[3].Value));
        foreach (var rule in DiagnosticRule.All)
        {
            string page = RepositoryPaths.Combine("docs", "diagnostics", rule.Id + ".md");
            Assert.True(File.Exists(page), $"{rule.Id} has no page {page}");
            Assert.Contains(rule.Title, File.ReadAllText(page), StringComparison.Ordinal);
            Assert.True(rows.TryGetValue(rule.Id, out var row), $"{rule.Id} is missing from AnalyzerReleases.Unshipped.md");
            Assert.Equal((rule.Category, rule.Severity.ToString()), row);
        }

        Assert.Equal(DiagnosticRule.All.Count, rows.Count);
        Assert.Equal(DiagnosticRule.All.Count, DiagnosticRule.All.Select(r => r.Id).Distinct().Count());
    }

    [Fact]
    public void Ids_sit_in_the_range_of_their_category()
    {
        var ranges = new Dictionary<string, char> { ["MC.Usage"] = '1', ["MC.Architecture"] = '2', ["MC.Kernels"] = '3', ["MC.KernelPlan"] = '4', ["MC.Training"] = '5', ["MC.Pipeline"] = '6', ["MC.Generator"] = '9' };
        Assert.All(DiagnosticRule.All, rule => Assert.Equal(ranges[rule.Category], rule.Id[2]));
    }
}
