using System.Collections.Immutable;
using System.Composition;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace ModelCompiler.CodeFixes
{
    /// <summary>
    /// Fixes for the generator's diagnostics where only one fix makes sense: MC1001/MC1002 add the missing <c>partial</c>,
    /// MC1007 declares the record as a class, MC2010 rounds the latent width up to the next multiple of 64, MC2005 keeps
    /// every group (GroupsPerToken = ExpertGroups), MC2013 removes a BiasUpdateSpeed that auxiliary-loss balancing never reads,
    /// MC5002 sets RewardScaling.None as Dr. GRPO prescribes.
    /// </summary>
    [ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(ModelCompilerCodeFixes))]
    [Shared]
    public sealed class ModelCompilerCodeFixes : CodeFixProvider
    {
        /// <inheritdoc/>
        public override ImmutableArray<string> FixableDiagnosticIds { get; } = ImmutableArray.Create("MC1001", "MC1002", "MC1007", "MC2010", "MC2005", "MC2013", "MC5002");

        /// <inheritdoc/>
        public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

        /// <inheritdoc/>
        public override async Task RegisterCodeFixesAsync(CodeFixContext context)
        {
            var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
            var model = await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false);
            if (root is null || model is null) return;
            foreach (var diagnostic in context.Diagnostics)
            {
                var node = root.FindNode(diagnostic.Location.SourceSpan, getInnermostNodeForTie: true);
                switch (diagnostic.Id)
                {
                    case "MC1001" or "MC1002" when node.FirstAncestorOrSelf<TypeDeclarationSyntax>() is { } type:
                        Register(context, diagnostic, $"Make '{type.Identifier.Text}' partial", root, type, AddPartial(type));
                        break;
                    case "MC1007" when node.FirstAncestorOrSelf<RecordDeclarationSyntax>() is { } record:
                        Register(context, diagnostic, $"Declare '{record.Identifier.Text}' as a partial class", root, record, ToClass(record));
                        break;
                    case "MC2010" when node.FirstAncestorOrSelf<AttributeArgumentSyntax>() is { } argument && Constant(argument.Expression, model, out int rank):
                        int rounded = (rank + 63) / 64 * 64;
                        Register(context, diagnostic, $"Round the latent width to {rounded}", root, argument.Expression, Literal(rounded, argument.Expression));
                        break;
                    case "MC2005" when node.FirstAncestorOrSelf<AttributeArgumentSyntax>() is { } argument:
                        int groups = GroupsOf(argument, model);
                        Register(context, diagnostic, $"Keep all {groups} groups (GroupsPerToken = {groups})", root, argument.Expression, Literal(groups, argument.Expression));
                        break;
                    case "MC2013" when node.FirstAncestorOrSelf<AttributeArgumentSyntax>() is { } argument:
                        Register(context, diagnostic, "Remove BiasUpdateSpeed", root.RemoveNode(argument, SyntaxRemoveOptions.KeepNoTrivia)!);
                        break;
                    case "MC5002" when node.FirstAncestorOrSelf<AttributeArgumentSyntax>() is { } argument:
                        var none = SyntaxFactory.ParseExpression("RewardScaling.None").WithTriviaFrom(argument.Expression);
                        Register(context, diagnostic, "Use RewardScaling.None", root, argument.Expression, none);
                        break;
                }
            }
        }

        private static void Register(CodeFixContext context, Diagnostic diagnostic, string title, SyntaxNode root, SyntaxNode old, SyntaxNode replacement) =>
            Register(context, diagnostic, title, root.ReplaceNode(old, replacement));

        private static void Register(CodeFixContext context, Diagnostic diagnostic, string title, SyntaxNode fixedRoot) =>
            context.RegisterCodeFix(
                CodeAction.Create(title, _ => Task.FromResult(context.Document.WithSyntaxRoot(fixedRoot)), equivalenceKey: diagnostic.Id),
                diagnostic);

        private static TypeDeclarationSyntax AddPartial(TypeDeclarationSyntax type)
        {
            if (type.Modifiers.Any(SyntaxKind.PartialKeyword)) return type;
            var partial = SyntaxFactory.Token(SyntaxKind.PartialKeyword).WithTrailingTrivia(SyntaxFactory.Space);
            // 'partial' goes last among the modifiers, just before the keyword; with none, it takes the keyword's leading trivia.
            if (type.Modifiers.Count == 0)
            {
                return type.WithModifiers(SyntaxFactory.TokenList(partial.WithLeadingTrivia(type.Keyword.LeadingTrivia)))
                    .WithKeyword(type.Keyword.WithLeadingTrivia(SyntaxFactory.TriviaList()));
            }

            return type.WithModifiers(type.Modifiers.Add(partial));
        }

        private static ClassDeclarationSyntax ToClass(RecordDeclarationSyntax record)
        {
            var modifiers = record.Modifiers.Any(SyntaxKind.PartialKeyword)
                ? record.Modifiers
                : record.Modifiers.Add(SyntaxFactory.Token(SyntaxKind.PartialKeyword).WithTrailingTrivia(SyntaxFactory.Space));
            var declaration = SyntaxFactory.ClassDeclaration(record.AttributeLists, modifiers, SyntaxFactory.Token(SyntaxKind.ClassKeyword).WithTriviaFrom(record.Keyword),
                record.Identifier, record.TypeParameterList, record.ParameterList, record.BaseList, record.ConstraintClauses,
                record.OpenBraceToken, record.Members, record.CloseBraceToken, record.SemicolonToken);
            return declaration.WithTriviaFrom(record);
        }

        /// <summary>ExpertGroups as the same attribute sets it, or its default of 1.</summary>
        private static int GroupsOf(AttributeArgumentSyntax argument, SemanticModel model)
        {
            var expertGroups = (argument.Parent as AttributeArgumentListSyntax)?.Arguments
                .FirstOrDefault(a => a.NameEquals?.Name.Identifier.Text == "ExpertGroups");
            return expertGroups is not null && Constant(expertGroups.Expression, model, out int value) ? value : 1;
        }

        /// <summary>The argument's value where it is a compile-time integer (a literal or a const), as the generator read it.</summary>
        private static bool Constant(ExpressionSyntax expression, SemanticModel model, out int value)
        {
            if (model.GetConstantValue(expression) is { HasValue: true, Value: int constant })
            {
                value = constant;
                return true;
            }

            value = 0;
            return false;
        }

        private static ExpressionSyntax Literal(int value, SyntaxNode trivia) =>
            SyntaxFactory.LiteralExpression(SyntaxKind.NumericLiteralExpression, SyntaxFactory.Literal(value)).WithTriviaFrom(trivia);
    }
}
