using System.Diagnostics;
using System.Linq;
using ModelCompiler.Planning;

namespace ModelCompiler.Generators.Model
{
    // Equality contract: these records are immutable and structurally equatable, as is everything they hold; otherwise the
    // incremental pipeline's caching breaks. They must never hold an ISymbol, SyntaxNode, SemanticModel, Compilation or
    // Location (a reflection test walks them to prove it).

    /// <summary>One type around the model class, outermost first.</summary>
    /// <param name="Keyword">"class", "struct", "record", "record struct" or "interface".</param>
    /// <param name="Name">The type's name.</param>
    internal sealed record ContainingTypeSpec(string Keyword, string Name);

    /// <summary>Where the model class lives: namespace, containing types, name and the file-name hint.</summary>
    /// <param name="Namespace">The namespace, empty for the global namespace.</param>
    /// <param name="ContainingTypes">The containing types, outermost first.</param>
    /// <param name="Name">The model class's name.</param>
    /// <param name="FilenameHint">The fully-qualified metadata name, used for hint names.</param>
    [DebuggerDisplay("{FilenameHint}")]
    internal sealed record HierarchySpec(string Namespace, EquatableArray<ContainingTypeSpec> ContainingTypes, string Name, string FilenameHint)
    {
        /// <summary>The model class as a <c>global::</c>-qualified name, for references from nested generated types.</summary>
        public string GlobalName => "global::" + string.Join(".", new[] { Namespace }.Concat(ContainingTypes.Select(t => t.Name)).Concat(new[] { Name }).Where(p => p.Length > 0));
    }

    /// <summary>A model class to generate for: where it is and what it declares.</summary>
    /// <param name="Hierarchy">Where it is.</param>
    /// <param name="Spec">What its attributes declare.</param>
    [DebuggerDisplay("{Hierarchy.FilenameHint}")]
    internal sealed record ModelTarget(HierarchySpec Hierarchy, ModelSpec Spec);

    /// <summary>The transform's result: a target when the class could be read, and its diagnostics.</summary>
    /// <param name="Target">The target, or null.</param>
    /// <param name="Diagnostics">Usage and validation diagnostics, with positions.</param>
    internal sealed record ParseResult(ModelTarget? Target, EquatableArray<DiagnosticInfo> Diagnostics);

    /// <summary>A planned model: what every emitter reads.</summary>
    /// <param name="Hierarchy">Where the class is.</param>
    /// <param name="Spec">The declaration.</param>
    /// <param name="Plan">The plan.</param>
    [DebuggerDisplay("{Hierarchy.FilenameHint}")]
    internal sealed record ModelGeneration(HierarchySpec Hierarchy, ModelSpec Spec, ModelPlan Plan)
    {
        /// <summary>Plans <paramref name="target"/>; null when the spec has errors (they were reported by the parse step).</summary>
        public static ModelGeneration? Create(ModelTarget target)
        {
            var result = ModelPlanner.Plan(target.Spec);
            return result.Plan is null ? null : new ModelGeneration(target.Hierarchy, target.Spec, result.Plan);
        }
    }

    /// <summary>One generated file.</summary>
    /// <param name="HintName">The hint name, {FilenameHint}.{Artifact}.g.cs.</param>
    /// <param name="Text">The source text.</param>
    internal sealed record GeneratedFile(string HintName, string Text);
}
