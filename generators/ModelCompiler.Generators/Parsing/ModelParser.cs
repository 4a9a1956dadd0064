using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using ModelCompiler.Generators.Model;
using ModelCompiler.Planning;

namespace ModelCompiler.Generators.Parsing
{
    /// <summary>
    /// Symbols and syntax in, specs out: the only code of the generator that touches Roslyn's symbols and syntax. Everything it
    /// returns is a plain record (see <see cref="ParseResult"/>).
    /// </summary>
    internal static class ModelParser
    {
        public const string Namespace = "ModelCompiler.";
        public const string ModelAttributeMetadataName = Namespace + SpecAttributes.Model + "Attribute";

        /// <summary>The metadata names of every attribute but [DeepSeekModel].</summary>
        public static readonly string[] ComponentAttributeMetadataNames =
            SpecAttributes.All.Where(a => a != SpecAttributes.Model).Select(a => Namespace + a + "Attribute").ToArray();

        public static ParseResult Parse(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
        {
            var type = (INamedTypeSymbol)context.TargetSymbol;
            var declaration = (TypeDeclarationSyntax)context.TargetNode;
            if (declaration is RecordDeclarationSyntax)
            {
                var record = DiagnosticInfo.Create(DiagnosticRule.ModelClassIsRecord, LocationInfo.From(declaration.Identifier.GetLocation()), type.Name);
                return new ParseResult(null, new[] { record }.ToEquatableArray());
            }

            try
            {
                return ParseCore(type, declaration, cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                var info = DiagnosticInfo.Create(DiagnosticRule.InternalError, LocationInfo.From(declaration.Identifier.GetLocation()),
                    type.Name, e.GetType().Name + ": " + e.Message);
                return new ParseResult(null, new[] { info }.ToEquatableArray());
            }
        }

        /// <summary>Reports a component attribute on a type that lacks [DeepSeekModel]; null when the type has it.</summary>
        public static DiagnosticInfo? FindOrphan(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
        {
            var type = context.TargetSymbol;
            bool isModel = type.GetAttributes().Any(a => a.AttributeClass?.ToDisplayString() == ModelAttributeMetadataName);
            if (isModel) return null;
            cancellationToken.ThrowIfCancellationRequested();
            var attribute = context.Attributes[0];
            var location = LocationInfo.From(attribute.ApplicationSyntaxReference?.GetSyntax(cancellationToken));
            string name = attribute.AttributeClass!.Name;
            return DiagnosticInfo.Create(DiagnosticRule.ComponentWithoutModel, location, name.Substring(0, name.Length - "Attribute".Length), type.Name);
        }

        private static ParseResult ParseCore(INamedTypeSymbol type, TypeDeclarationSyntax declaration, CancellationToken cancellationToken)
        {
            var diagnostics = new List<DiagnosticInfo>();
            var identifier = LocationInfo.From(declaration.Identifier.GetLocation());

            foreach (var reference in type.DeclaringSyntaxReferences)
            {
                if (reference.GetSyntax(cancellationToken) is ClassDeclarationSyntax part && !part.Modifiers.Any(SyntaxKind.PartialKeyword))
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticRule.ModelClassNotPartial, LocationInfo.From(part.Identifier.GetLocation()), type.Name));
                }
            }

            for (var outer = type.ContainingType; outer is not null; outer = outer.ContainingType)
            {
                foreach (var reference in outer.DeclaringSyntaxReferences)
                {
                    if (reference.GetSyntax(cancellationToken) is TypeDeclarationSyntax part && !part.Modifiers.Any(SyntaxKind.PartialKeyword))
                    {
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticRule.ContainingTypeNotPartial, LocationInfo.From(part.Identifier.GetLocation()), type.Name, outer.Name));
                    }
                }
            }

            if (type.IsGenericType || type.ContainingType?.IsGenericType == true)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticRule.GenericModelClass, identifier, type.Name));
            }

            var attributes = new Dictionary<string, AttributeArguments>(StringComparer.Ordinal);
            foreach (var data in type.GetAttributes())
            {
                cancellationToken.ThrowIfCancellationRequested();
                string? full = data.AttributeClass?.ToDisplayString();
                if (full is null || !full.StartsWith(Namespace, StringComparison.Ordinal) || !full.EndsWith("Attribute", StringComparison.Ordinal)) continue;
                string name = full.Substring(Namespace.Length, full.Length - Namespace.Length - "Attribute".Length);
                if (!SpecAttributes.All.Contains(name)) continue;
                var arguments = AttributeArguments.Read(data, cancellationToken);
                if (arguments is null) return new ParseResult(null, diagnostics.ToEquatableArray()); // the compiler reports the bad argument
                attributes[name] = arguments;
            }

            if (!attributes.ContainsKey(SpecAttributes.Attention))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticRule.MissingAttention, identifier, type.Name));
            }

            if (diagnostics.Count > 0 || !attributes.ContainsKey(SpecAttributes.Model))
            {
                return new ParseResult(null, diagnostics.ToEquatableArray());
            }

            var spec = BuildSpec(attributes);
            // The planner validates first and adds what only planning finds (counts beyond 2^63); the Plan step repeats the
            // (cheap) work without positions, so that edits which move the declaration leave it cached.
            foreach (var issue in ModelPlanner.Plan(spec).Issues)
            {
                var location = attributes.TryGetValue(issue.Attribute, out var args) ? args.LocationOf(issue.Argument) : null;
                diagnostics.Add(new DiagnosticInfo(issue.RuleId, location ?? attributes[SpecAttributes.Model].LocationOf(issue.Argument), issue.Arguments));
            }

            return new ParseResult(new ModelTarget(BuildHierarchy(type), spec), diagnostics.ToEquatableArray());
        }

        private static ModelSpec BuildSpec(Dictionary<string, AttributeArguments> a)
        {
            var model = a[SpecAttributes.Model];
            var spec = new ModelSpec
            {
                VocabularySize = model.Int("VocabularySize", 0),
                HiddenSize = model.Int("HiddenSize", 0),
                Layers = model.Int("Layers", 0),
                DenseLayers = model.Int("DenseLayers", 0),
                DenseIntermediateSize = model.Int("DenseIntermediateSize", 0),
                RmsNormEpsilon = model.Double("RmsNormEpsilon", SpecDefaults.RmsNormEpsilon),
                RopeTheta = model.Double("RopeTheta", SpecDefaults.RopeTheta),
                TieEmbeddings = model.Bool("TieEmbeddings", false),
                SequenceLength = model.Int("SequenceLength", SpecDefaults.SequenceLength),
            };

            if (a.TryGetValue(SpecAttributes.Attention, out var mla))
            {
                spec = spec with
                {
                    Attention = new AttentionSpec(
                        mla.Int("Heads", 0),
                        mla.Int("KeyValueLoraRank", 0),
                        mla.Int("QueryLoraRank", SpecDefaults.QueryLoraRank),
                        mla.Int("QkNopeHeadDim", SpecDefaults.QkNopeHeadDim),
                        mla.Int("QkRopeHeadDim", SpecDefaults.QkRopeHeadDim),
                        mla.Int("ValueHeadDim", SpecDefaults.ValueHeadDim)),
                };
            }

            if (a.TryGetValue(SpecAttributes.Yarn, out var yarn))
            {
                spec = spec with
                {
                    Yarn = new YarnSpec(
                        yarn.Double("Factor", 1),
                        yarn.Int("OriginalContextLength", 0),
                        yarn.Double("BetaFast", SpecDefaults.BetaFast),
                        yarn.Double("BetaSlow", SpecDefaults.BetaSlow),
                        yarn.Double("MScale", SpecDefaults.MScale),
                        yarn.Double("MScaleAllDim", SpecDefaults.MScale)),
                };
            }

            if (a.TryGetValue(SpecAttributes.Moe, out var moe))
            {
                spec = spec with
                {
                    Moe = new MoeSpec(
                        moe.Int("RoutedExperts", 0),
                        moe.Int("ActivatedExperts", 0),
                        moe.Int("ExpertIntermediateSize", 0),
                        moe.Int("SharedExperts", 0),
                        moe.Enum("Scoring", ExpertScoring.Sigmoid),
                        moe.Int("ExpertGroups", 1),
                        moe.Int("GroupsPerToken", 1),
                        moe.Double("RoutedScalingFactor", SpecDefaults.RoutedScalingFactor),
                        moe.Bool("NormalizeTopK", true),
                        moe.Enum("Balancing", LoadBalancing.AuxiliaryLossFree),
                        moe.Double("BiasUpdateSpeed", SpecDefaults.BiasUpdateSpeed),
                        moe.Double("SequenceBalanceLossWeight", 0),
                        moe.Double("ExpertBalanceLossWeight", 0),
                        moe.Double("DeviceBalanceLossWeight", 0),
                        moe.Double("CommunicationBalanceLossWeight", 0)),
                };
            }

            if (a.TryGetValue(SpecAttributes.Mtp, out var mtp))
            {
                spec = spec with { Mtp = new MtpSpec(mtp.Int("Depth", 0), mtp.Double("LossWeight", SpecDefaults.MtpLossWeight)) };
            }

            if (a.TryGetValue(SpecAttributes.Precision, out var precision))
            {
                spec = spec with
                {
                    Precision = new PrecisionSpec(
                        precision.Enum("Compute", NumericFormat.Fp32),
                        precision.Int("ActivationTile", SpecDefaults.Fp8BlockSize),
                        precision.Int("WeightBlock", SpecDefaults.Fp8BlockSize),
                        precision.Int("PromotionInterval", SpecDefaults.PromotionInterval),
                        precision.Enum("MasterWeights", NumericFormat.Fp32),
                        precision.Enum("OptimizerMoments", NumericFormat.Fp32)),
                };
            }

            if (a.TryGetValue(SpecAttributes.Pipeline, out var pipeline))
            {
                spec = spec with
                {
                    Pipeline = new PipelineSpec(pipeline.Int("Stages", 0), pipeline.Enum("Schedule", PipelineSchedule.OneFOneB), pipeline.Int("MicroBatches", 0)),
                };
            }

            if (a.TryGetValue(SpecAttributes.ExpertParallel, out var experts))
            {
                spec = spec with { ExpertParallel = new ExpertParallelSpec(experts.Int("Ranks", 0), experts.Int("RanksPerNode", SpecDefaults.RanksPerNode)) };
            }

            if (a.TryGetValue(SpecAttributes.Grpo, out var grpo))
            {
                spec = spec with
                {
                    Grpo = new GrpoSpec(
                        grpo.Int("GroupSize", 0),
                        grpo.Double("Epsilon", SpecDefaults.GrpoEpsilon),
                        grpo.Double("EpsilonHigh", 0),
                        grpo.Double("Beta", SpecDefaults.GrpoBeta),
                        grpo.Enum("LossAggregation", GrpoLossAggregation.Dapo),
                        grpo.Enum("RewardScaling", RewardScaling.Group),
                        grpo.Int("UpdatesPerRollout", SpecDefaults.GrpoUpdatesPerRollout)),
                };
            }

            return spec;
        }

        private static HierarchySpec BuildHierarchy(INamedTypeSymbol type)
        {
            var chain = new List<ContainingTypeSpec>();
            for (var outer = type.ContainingType; outer is not null; outer = outer.ContainingType)
            {
                string keyword = outer.IsRecord
                    ? (outer.TypeKind == TypeKind.Struct ? "record struct" : "record")
                    : outer.TypeKind switch { TypeKind.Struct => "struct", TypeKind.Interface => "interface", _ => "class" };
                chain.Insert(0, new ContainingTypeSpec(keyword, outer.Name));
            }

            string ns = type.ContainingNamespace is { IsGlobalNamespace: false } n ? n.ToDisplayString() : string.Empty;
            string hint = string.Join(".", new[] { ns }.Concat(chain.Select(c => c.Name)).Concat(new[] { type.Name }).Where(s => s.Length > 0));
            return new HierarchySpec(ns, chain.ToEquatableArray(), type.Name, hint);
        }

        /// <summary>An attribute's arguments by property name, with where each was written.</summary>
        private sealed class AttributeArguments
        {
            private readonly Dictionary<string, (TypedConstant Value, LocationInfo? Location)> _values = new(StringComparer.Ordinal);
            private LocationInfo? _attributeLocation;

            public static AttributeArguments? Read(AttributeData data, CancellationToken cancellationToken)
            {
                var result = new AttributeArguments();
                var syntax = data.ApplicationSyntaxReference?.GetSyntax(cancellationToken) as AttributeSyntax;
                result._attributeLocation = LocationInfo.From(syntax);
                var parameters = data.AttributeConstructor?.Parameters ?? ImmutableArrayOfNone;
                var written = new Dictionary<string, LocationInfo?>(StringComparer.Ordinal);
                if (syntax?.ArgumentList is { } list)
                {
                    for (int i = 0; i < list.Arguments.Count; i++)
                    {
                        var argument = list.Arguments[i];
                        string? name = argument.NameEquals?.Name.Identifier.ValueText
                            ?? (argument.NameColon is { } colon ? Pascal(colon.Name.Identifier.ValueText)
                            : i < parameters.Length ? Pascal(parameters[i].Name) : null);
                        if (name is not null) written[name] = LocationInfo.From(argument);
                    }
                }

                if (data.ConstructorArguments.Length != parameters.Length) return null;
                for (int i = 0; i < parameters.Length; i++)
                {
                    string name = Pascal(parameters[i].Name);
                    if (!result.Add(name, data.ConstructorArguments[i], written)) return null;
                }

                foreach (var pair in data.NamedArguments)
                {
                    if (!result.Add(pair.Key, pair.Value, written)) return null;
                }

                return result;
            }

            public LocationInfo? LocationOf(string argument) =>
                _values.TryGetValue(argument, out var entry) && entry.Location is not null ? entry.Location : _attributeLocation;

            public int Int(string name, int fallback) => _values.TryGetValue(name, out var v) && v.Value.Value is int i ? i : fallback;

            public double Double(string name, double fallback) => _values.TryGetValue(name, out var v) && v.Value.Value is { } o && o is not bool
                ? Convert.ToDouble(o, CultureInfo.InvariantCulture)
                : fallback;

            public bool Bool(string name, bool fallback) => _values.TryGetValue(name, out var v) && v.Value.Value is bool b ? b : fallback;

            public TEnum Enum<TEnum>(string name, TEnum fallback)
                where TEnum : struct
            {
                if (!_values.TryGetValue(name, out var v) || v.Value.Value is not int raw) return fallback;
                return (TEnum)(object)raw; // an undefined value is kept and rejected by the validator's switch defaults
            }

            private bool Add(string name, TypedConstant value, Dictionary<string, LocationInfo?> written)
            {
                if (value.Kind == TypedConstantKind.Error || value.Kind == TypedConstantKind.Array) return false;
                written.TryGetValue(name, out var location);
                _values[name] = (value, location);
                return true;
            }

            private static string Pascal(string name) => name.Length == 0 ? name : char.ToUpperInvariant(name[0]) + name.Substring(1);

            private static readonly System.Collections.Immutable.ImmutableArray<IParameterSymbol> ImmutableArrayOfNone =
                System.Collections.Immutable.ImmutableArray<IParameterSymbol>.Empty;
        }
    }
}
