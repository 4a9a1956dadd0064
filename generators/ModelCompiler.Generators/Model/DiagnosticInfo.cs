using System.Linq;
using Microsoft.CodeAnalysis;
using ModelCompiler.Generators.Diagnostics;
using ModelCompiler.Planning;

namespace ModelCompiler.Generators.Model
{
    /// <summary>A diagnostic as a value: rule id, position and message arguments (a workaround for roslyn#68291).</summary>
    /// <param name="RuleId">The rule.</param>
    /// <param name="Location">Where to report it.</param>
    /// <param name="Arguments">The message arguments.</param>
    internal sealed record DiagnosticInfo(string RuleId, LocationInfo? Location, EquatableArray<string> Arguments)
    {
        public Diagnostic ToDiagnostic() =>
            Diagnostic.Create(ModelCompilerDiagnostics.Get(RuleId), Location?.ToLocation() ?? Microsoft.CodeAnalysis.Location.None, Arguments.ToArray<object>());

        public static DiagnosticInfo Create(DiagnosticRule rule, LocationInfo? location, params string[] arguments) =>
            new(rule.Id, location, arguments.ToEquatableArray());
    }
}
