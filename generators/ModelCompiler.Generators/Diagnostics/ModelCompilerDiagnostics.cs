using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using ModelCompiler.Planning;

namespace ModelCompiler.Generators.Diagnostics
{
    /// <summary>
    /// The Roslyn descriptors of every ModelCompiler rule. The rules themselves (id, title, message, severity, category) live in
    /// <see cref="DiagnosticRule"/>, shared with the runtime and the CLI; this table turns each into a descriptor once. Keep
    /// AnalyzerReleases.Unshipped.md and docs/diagnostics/ in step (a test checks both).
    /// </summary>
    internal static class ModelCompilerDiagnostics
    {
        private const string HelpBase = "https://github.com/modelcompiler/modelcompiler/blob/main/";

        private static readonly Dictionary<string, DiagnosticDescriptor> s_descriptors = DiagnosticRule.All.ToDictionary(
            rule => rule.Id,
            rule => new DiagnosticDescriptor(
                rule.Id,
                rule.Title,
                rule.MessageFormat,
                rule.Category,
                rule.Severity switch
                {
                    RuleSeverity.Error => DiagnosticSeverity.Error,
                    RuleSeverity.Warning => DiagnosticSeverity.Warning,
                    _ => DiagnosticSeverity.Info,
                },
                isEnabledByDefault: true,
                description: rule.Description,
                helpLinkUri: HelpBase + rule.HelpLink,
                customTags: rule.Severity == RuleSeverity.Error ? new[] { WellKnownDiagnosticTags.NotConfigurable } : new string[0]));

        /// <summary>The descriptor of rule <paramref name="id"/>.</summary>
        public static DiagnosticDescriptor Get(string id) => s_descriptors[id];
    }
}
