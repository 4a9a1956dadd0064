using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace ModelCompiler.Planning
{
    /// <summary>The short names of the DSL's attributes, as a user writes them and as diagnostics name them.</summary>
    public static class SpecAttributes
    {
        /// <summary>[DeepSeekModel].</summary>
        public const string Model = "DeepSeekModel";

        /// <summary>[YarnRopeScaling].</summary>
        public const string Yarn = "YarnRopeScaling";

        /// <summary>[MultiHeadLatentAttention].</summary>
        public const string Attention = "MultiHeadLatentAttention";

        /// <summary>[MixtureOfExperts].</summary>
        public const string Moe = "MixtureOfExperts";

        /// <summary>[MultiTokenPrediction].</summary>
        public const string Mtp = "MultiTokenPrediction";

        /// <summary>[PrecisionPolicy].</summary>
        public const string Precision = "PrecisionPolicy";

        /// <summary>[PipelineParallel].</summary>
        public const string Pipeline = "PipelineParallel";

        /// <summary>[ExpertParallel].</summary>
        public const string ExpertParallel = "ExpertParallel";

        /// <summary>[Grpo].</summary>
        public const string Grpo = "Grpo";

        /// <summary>Every attribute name, [DeepSeekModel] first.</summary>
        public static IReadOnlyList<string> All { get; } = new[] { Model, Yarn, Attention, Moe, Mtp, Precision, Pipeline, ExpertParallel, Grpo };
    }

    /// <summary>One problem with a spec: which rule, and which attribute argument it is about.</summary>
    /// <param name="RuleId">The <see cref="DiagnosticRule.Id"/>.</param>
    /// <param name="Severity">The rule's severity.</param>
    /// <param name="Attribute">The attribute the problem is on, e.g. <c>MixtureOfExperts</c>.</param>
    /// <param name="Argument">The argument, e.g. <c>ActivatedExperts</c>.</param>
    /// <param name="Arguments">The values that fill the rule's message format, formatted with the invariant culture.</param>
    public sealed record SpecIssue(string RuleId, RuleSeverity Severity, string Attribute, string Argument, EquatableArray<string> Arguments)
    {
        /// <summary>The rule's message with <see cref="Arguments"/> filled in.</summary>
        public string Message => string.Format(CultureInfo.InvariantCulture, Rule.MessageFormat, Arguments.ToArray<object>());

        /// <summary>The rule.</summary>
        public DiagnosticRule Rule => DiagnosticRule.Find(RuleId);

        /// <inheritdoc/>
        public override string ToString() => $"{Severity.ToString().ToLowerInvariant()} {RuleId}: {Message}";
    }

    /// <summary>
    /// Checks a <see cref="ModelSpec"/> for impossible models (errors) and legal but poor choices (warnings). Shared by the
    /// generator, which reports the issues on the attribute arguments, and by the runtime and CLI.
    /// </summary>
    public static class SpecValidator
    {
        /// <summary>The largest value any single size may take (2^24); anything larger is a typo.</summary>
        public const int MaxDimension = 1 << 24;

        /// <summary>The largest number of layers (2^16).</summary>
        public const int MaxLayers = 1 << 16;

        /// <summary>Validates <paramref name="spec"/>; an empty list means it can be planned.</summary>
        public static IReadOnlyList<SpecIssue> Validate(ModelSpec spec)
        {
            var v = new Collector();
            ValidateModel(spec, v);
            ValidateAttention(spec, v);
            if (spec.Yarn is { } yarn) ValidateYarn(yarn, v);
            if (spec.Moe is { } moe) ValidateMoe(spec, moe, v);
            if (spec.Mtp is { } mtp)
            {
                v.AtLeast(SpecAttributes.Mtp, "Depth", mtp.Depth, 0, "the depth is a count of modules; 0 disables MTP");
                v.Range(SpecAttributes.Mtp, "LossWeight", mtp.LossWeight, 0, 100, "λ must be a finite weight ≥ 0 (DeepSeek-V3: 0.3, then 0.1)");
            }

            ValidateEnums(spec, v);
            ValidatePrecision(spec, v);
            if (spec.Pipeline is { } pipeline) ValidatePipeline(spec, pipeline, v);
            if (spec.ExpertParallel is { } experts) ValidateExpertParallel(spec, experts, v);
            if (spec.Grpo is { } grpo) ValidateGrpo(grpo, v);
            return v.Issues;
        }

        private static void ValidateModel(ModelSpec s, Collector v)
        {
            const string A = SpecAttributes.Model;
            v.Size(A, "VocabularySize", s.VocabularySize);
            v.Size(A, "HiddenSize", s.HiddenSize);
            v.Size(A, "Layers", s.Layers, max: MaxLayers);
            v.Size(A, "SequenceLength", s.SequenceLength);
            v.Range(A, "RmsNormEpsilon", s.RmsNormEpsilon, double.Epsilon, 1, "epsilon must be positive and below 1 (DeepSeek: 1e-6)");
            v.Range(A, "RopeTheta", s.RopeTheta, 1, 1e12, "θ must exceed 1 (DeepSeek: 10000)", lowExclusive: true);
            if (!v.AtLeast(A, "DenseLayers", s.DenseLayers, 0, "DenseLayers counts leading dense layers")) return;
            if (s.Layers > 0 && s.DenseLayers > s.Layers)
            {
                v.Add(DiagnosticRule.DenseLayersExceedLayers, A, "DenseLayers", s.DenseLayers, s.Layers);
                return;
            }

            if (s.DenseIntermediateSize < 0 || s.DenseIntermediateSize > MaxDimension)
            {
                v.Size(A, "DenseIntermediateSize", s.DenseIntermediateSize);
            }
            else if (s.DenseIntermediateSize == 0 && s.Layers > 0 && s.DenseLayerCount > 0)
            {
                v.Add(DiagnosticRule.DenseWidthMissing, A, "DenseIntermediateSize", s.DenseIntermediateSize, s.DenseLayerCount);
            }
        }

        private static void ValidateAttention(ModelSpec s, Collector v)
        {
            const string A = SpecAttributes.Attention;
            var a = s.Attention;
            v.Size(A, "Heads", a.Heads);
            v.Size(A, "KeyValueLoraRank", a.KeyValueLoraRank);
            if (a.QueryLoraRank != 0) v.Size(A, "QueryLoraRank", a.QueryLoraRank, "a positive width, or 0 for no query compression");
            v.Size(A, "QkNopeHeadDim", a.QkNopeHeadDim);
            v.Size(A, "ValueHeadDim", a.ValueHeadDim);
            if (v.Size(A, "QkRopeHeadDim", a.QkRopeHeadDim) && a.QkRopeHeadDim % 2 != 0)
            {
                v.Add(DiagnosticRule.OddRopeDimension, A, "QkRopeHeadDim", a.QkRopeHeadDim, a.QkRopeHeadDim + 1);
            }

            const int Tile = MlaShape.LatentTile;
            if (a.KeyValueLoraRank > 0 && a.KeyValueLoraRank <= MaxDimension && a.KeyValueLoraRank % Tile != 0)
            {
                int below = a.KeyValueLoraRank / Tile * Tile;
                v.Add(DiagnosticRule.KvLoraRankNotMultipleOf64, A, "KeyValueLoraRank", a.KeyValueLoraRank, below == 0 ? $"{Tile}" : $"{below} or {below + Tile}");
            }
        }

        private static void ValidateYarn(YarnSpec y, Collector v)
        {
            const string A = SpecAttributes.Yarn;
            v.Range(A, "Factor", y.Factor, 1, 1e6, "the context extension factor must be at least 1 (DeepSeek-V3: 40)");
            v.Size(A, "OriginalContextLength", y.OriginalContextLength);
            bool fast = v.Range(A, "BetaFast", y.BetaFast, 0, 1e6, "β_fast must be positive (DeepSeek-V3: 32)", lowExclusive: true);
            bool slow = v.Range(A, "BetaSlow", y.BetaSlow, 0, 1e6, "β_slow must be positive (DeepSeek-V3: 1)", lowExclusive: true);
            if (fast && slow && y.BetaFast <= y.BetaSlow) v.Add(DiagnosticRule.YarnBetaOrder, A, "BetaFast", y.BetaFast, y.BetaSlow);
            v.Range(A, "MScale", y.MScale, 0, 100, "m must be a finite coefficient ≥ 0 (DeepSeek-V3: 1.0, V2-Lite: 0.707)");
            v.Range(A, "MScaleAllDim", y.MScaleAllDim, 0, 100, "mscale_all_dim must be a finite coefficient ≥ 0");
        }

        private static void ValidateMoe(ModelSpec s, MoeSpec m, Collector v)
        {
            const string A = SpecAttributes.Moe;
            bool routed = v.Size(A, "RoutedExperts", m.RoutedExperts);
            bool activated = v.Size(A, "ActivatedExperts", m.ActivatedExperts);
            v.Size(A, "ExpertIntermediateSize", m.ExpertIntermediateSize);
            v.AtLeast(A, "SharedExperts", m.SharedExperts, 0, "a count of always-active experts");
            bool groups = v.Size(A, "ExpertGroups", m.ExpertGroups);
            bool kept = v.Size(A, "GroupsPerToken", m.GroupsPerToken);
            v.Range(A, "RoutedScalingFactor", m.RoutedScalingFactor, 0, 1e6, "the gate multiplier must be positive (DeepSeek-V3: 2.5)", lowExclusive: true);
            v.Range(A, "BiasUpdateSpeed", m.BiasUpdateSpeed, 0, 1e3, "γ must be ≥ 0 (DeepSeek-V3: 0.001; 0 freezes the bias)");
            v.Range(A, "SequenceBalanceLossWeight", m.SequenceBalanceLossWeight, 0, 1e3, "α must be ≥ 0 (DeepSeek-V3: 1e-4)");
            v.Range(A, "ExpertBalanceLossWeight", m.ExpertBalanceLossWeight, 0, 1e3, "α1 must be ≥ 0 (V2: 0.003)");
            v.Range(A, "DeviceBalanceLossWeight", m.DeviceBalanceLossWeight, 0, 1e3, "α2 must be ≥ 0 (V2: 0.05)");
            v.Range(A, "CommunicationBalanceLossWeight", m.CommunicationBalanceLossWeight, 0, 1e3, "α3 must be ≥ 0 (V2: 0.02)");

            if (routed && activated && m.ActivatedExperts > m.RoutedExperts)
            {
                v.Add(DiagnosticRule.ActivatedExceedsRouted, A, "ActivatedExperts", m.ActivatedExperts, m.RoutedExperts);
                activated = false;
            }

            if (routed && groups)
            {
                if (m.RoutedExperts % m.ExpertGroups != 0)
                {
                    v.Add(DiagnosticRule.GroupsDoNotDivideExperts, A, "ExpertGroups", m.ExpertGroups, m.RoutedExperts, NearestDivisor(m.RoutedExperts, m.ExpertGroups));
                }
                else if (kept && m.GroupsPerToken > m.ExpertGroups)
                {
                    v.Add(DiagnosticRule.GroupsPerTokenExceedGroups, A, "GroupsPerToken", m.GroupsPerToken, m.ExpertGroups);
                }
                else if (kept && activated)
                {
                    int perGroup = m.RoutedExperts / m.ExpertGroups;
                    long available = (long)m.GroupsPerToken * perGroup;
                    if (available < m.ActivatedExperts)
                    {
                        v.Add(DiagnosticRule.KeptGroupsTooSmall, A, "GroupsPerToken", m.GroupsPerToken, perGroup, available, m.ActivatedExperts);
                    }
                }
            }

            if (s.Layers > 0 && s.DenseLayers == s.Layers)
            {
                v.Add(DiagnosticRule.MoeUnused, A, "RoutedExperts", s.Layers);
            }

            if (m.Balancing == LoadBalancing.AuxiliaryLoss && m.SequenceBalanceLossWeight == 0 && m.ExpertBalanceLossWeight == 0
                && m.DeviceBalanceLossWeight == 0 && m.CommunicationBalanceLossWeight == 0)
            {
                v.Add(DiagnosticRule.NoBalancing, A, "Balancing");
            }

            if (m.Balancing == LoadBalancing.AuxiliaryLoss && m.BiasUpdateSpeed != SpecDefaults.BiasUpdateSpeed)
            {
                v.Add(DiagnosticRule.BiasSpeedIgnored, A, "BiasUpdateSpeed", m.BiasUpdateSpeed.ToString("R", CultureInfo.InvariantCulture));
            }
        }

        /// <summary>An enum argument can be any integer cast to the enum type; only named values mean something.</summary>
        private static void ValidateEnums(ModelSpec s, Collector v)
        {
            if (s.Moe is { } m)
            {
                v.Defined(SpecAttributes.Moe, "Scoring", m.Scoring);
                v.Defined(SpecAttributes.Moe, "Balancing", m.Balancing);
            }

            v.Defined(SpecAttributes.Precision, "Compute", s.Precision.Compute);
            v.Defined(SpecAttributes.Precision, "MasterWeights", s.Precision.MasterWeights);
            v.Defined(SpecAttributes.Precision, "OptimizerMoments", s.Precision.OptimizerMoments);
            if (s.Pipeline is { } p) v.Defined(SpecAttributes.Pipeline, "Schedule", p.Schedule);
            if (s.Grpo is { } g)
            {
                v.Defined(SpecAttributes.Grpo, "LossAggregation", g.LossAggregation);
                v.Defined(SpecAttributes.Grpo, "RewardScaling", g.RewardScaling);
            }
        }

        private static void ValidatePrecision(ModelSpec s, Collector v)
        {
            const string A = SpecAttributes.Precision;
            var p = s.Precision;
            bool tile = ValidateTile(v, "ActivationTile", p.ActivationTile);
            bool blockValid = ValidateTile(v, "WeightBlock", p.WeightBlock);
            if (ValidateTile(v, "PromotionInterval", p.PromotionInterval) && tile && p.ActivationTile % p.PromotionInterval != 0)
            {
                v.Add(DiagnosticRule.InvalidPrecision, A, "PromotionInterval", "PromotionInterval", p.PromotionInterval,
                    string.Format(CultureInfo.InvariantCulture, "it must divide ActivationTile = {0}, since each tile's scale is applied when its partial sum is promoted", p.ActivationTile));
            }

            if (p.MasterWeights == NumericFormat.Fp8E4M3)
            {
                v.Add(DiagnosticRule.InvalidPrecision, A, "MasterWeights", "MasterWeights", p.MasterWeights, "master weights must be Fp32, Bf16 or Fp16; FP8 cannot hold the optimizer's small updates");
            }

            if (p.OptimizerMoments == NumericFormat.Fp8E4M3)
            {
                v.Add(DiagnosticRule.InvalidPrecision, A, "OptimizerMoments", "OptimizerMoments", p.OptimizerMoments, "AdamW moments must be Fp32, Bf16 or Fp16 (DeepSeek-V3: Bf16)");
            }

            if (p.Compute != NumericFormat.Fp8E4M3 || !blockValid) return;
            int block = p.WeightBlock;
            var a = s.Attention;
            var dims = new List<(string Name, long Value)> { ("DeepSeekModel.HiddenSize", s.HiddenSize) };
            if (s.DenseLayerCount > 0) dims.Add(("DeepSeekModel.DenseIntermediateSize", s.DenseIntermediateSize));
            if (a.QueryLoraRank > 0) dims.Add(("MultiHeadLatentAttention.QueryLoraRank", a.QueryLoraRank));
            dims.Add(("MultiHeadLatentAttention.KeyValueLoraRank", a.KeyValueLoraRank));
            if (s.Moe is { } moe && s.MoeLayers > 0) dims.Add(("MixtureOfExperts.ExpertIntermediateSize", moe.ExpertIntermediateSize));
            foreach (var (name, value) in dims)
            {
                if (value > 0 && value % block != 0)
                {
                    int dot = name.IndexOf('.');
                    v.Add(DiagnosticRule.Fp8DimensionNotAligned, name.Substring(0, dot), name.Substring(dot + 1), name, value, block);
                }
            }
        }

        private static bool ValidateTile(Collector v, string argument, int value)
        {
            if (value > 0 && value <= 4096 && value % 32 == 0) return true;
            v.Add(DiagnosticRule.InvalidPrecision, SpecAttributes.Precision, argument, argument, value, "it must be a positive multiple of 32 (the FP8 MMA depth), at most 4096 (DeepSeek-V3: 128)");
            return false;
        }

        /// <summary>Most ranks an expert-parallel group may declare.</summary>
        public const int MaxExpertParallelRanks = 65536;

        private static void ValidateExpertParallel(ModelSpec s, ExpertParallelSpec e, Collector v)
        {
            const string A = SpecAttributes.ExpertParallel;
            bool ranks = v.Size(A, "Ranks", e.Ranks, max: MaxExpertParallelRanks);
            bool perNode = v.Size(A, "RanksPerNode", e.RanksPerNode, max: MaxExpertParallelRanks);
            if (s.Moe is not { } m)
            {
                v.Add(DiagnosticRule.ExpertParallelWithoutMoe, A, "Ranks");
                return;
            }

            if (!ranks || !perNode) return;
            if (m.RoutedExperts % e.Ranks != 0)
            {
                v.Add(DiagnosticRule.ExpertsDoNotDivideOverRanks, A, "Ranks", m.RoutedExperts, e.Ranks);
                return;
            }

            if (e.Ranks > e.RanksPerNode && e.Ranks % e.RanksPerNode != 0)
            {
                v.Add(DiagnosticRule.ArgumentOutOfRange, A, "RanksPerNode", A, "RanksPerNode", e.RanksPerNode,
                    string.Format(CultureInfo.InvariantCulture, "the {0} ranks must fill whole nodes", e.Ranks));
                return;
            }

            if (e.Nodes > 1 && m.ExpertGroups != e.Nodes)
            {
                v.Add(DiagnosticRule.GroupsAreNotNodes, SpecAttributes.Moe, "ExpertGroups", m.ExpertGroups, e.Ranks, e.Nodes, e.RanksPerNode, m.GroupsPerToken);
            }
        }

        private static void ValidatePipeline(ModelSpec s, PipelineSpec p, Collector v)
        {
            const string A = SpecAttributes.Pipeline;
            bool stages = v.Size(A, "Stages", p.Stages, max: ModelCompiler.Pipeline.Schedules.MaxStages);
            bool micro = v.Size(A, "MicroBatches", p.MicroBatches, max: ModelCompiler.Pipeline.Schedules.MaxMicroBatches);
            if (stages && micro && ModelCompiler.Pipeline.Schedules.SizeProblem(p.Stages, p.MicroBatches) is { } tooLarge)
            {
                v.Add(DiagnosticRule.ArgumentOutOfRange, A, "MicroBatches", A, "MicroBatches", p.MicroBatches, tooLarge);
                micro = false;
            }

            if (!stages) return;
            if (s.Layers > 0 && p.Stages > s.Layers) v.Add(DiagnosticRule.MoreStagesThanLayers, A, "Stages", p.Stages, s.Layers);
            bool dual = p.Schedule is PipelineSchedule.DualPipe or PipelineSchedule.DualPipeV;
            if (dual && p.Stages % 2 != 0)
            {
                v.Add(DiagnosticRule.OddStagesForDualPipe, A, "Stages", p.Stages, p.Schedule);
                return;
            }

            if (!micro) return;
            if (p.Schedule == PipelineSchedule.DualPipe && (p.MicroBatches < 2 * p.Stages || p.MicroBatches % 2 != 0))
            {
                v.Add(DiagnosticRule.TooFewMicroBatches, A, "MicroBatches", p.MicroBatches, p.Schedule, p.Stages,
                    string.Format(CultureInfo.InvariantCulture, "an even count of at least 2 × {0} = {1}", p.Stages, 2 * p.Stages));
            }
            else if (p.Schedule == PipelineSchedule.DualPipeV && p.MicroBatches < p.Stages)
            {
                v.Add(DiagnosticRule.TooFewMicroBatches, A, "MicroBatches", p.MicroBatches, p.Schedule, p.Stages,
                    string.Format(CultureInfo.InvariantCulture, "at least 2 × (P/2 ranks) = {0}", p.Stages));
            }
            else if (!dual && p.MicroBatches < p.Stages)
            {
                v.Add(DiagnosticRule.PipelineNeverFills, A, "MicroBatches", p.MicroBatches, p.Stages);
            }
        }

        private static void ValidateGrpo(GrpoSpec g, Collector v)
        {
            const string A = SpecAttributes.Grpo;
            v.AtLeast(A, "GroupSize", g.GroupSize, 2, "advantages are relative to the group's mean and spread, which need at least 2 completions");
            bool eps = v.Range(A, "Epsilon", g.Epsilon, 0, 100, "ε must be positive (usually 0.2)", lowExclusive: true);
            bool high = v.Range(A, "EpsilonHigh", g.EpsilonHigh, 0, 100, "ε_high must be ≥ 0; 0 means the same as Epsilon (DAPO: 0.28)");
            if (eps && high && g.EpsilonHigh != 0 && g.EpsilonHigh < g.Epsilon) v.Add(DiagnosticRule.GrpoClipRangeInverted, A, "EpsilonHigh", g.EpsilonHigh, g.Epsilon);
            v.Range(A, "Beta", g.Beta, 0, 1e3, "β must be ≥ 0 (0 loads no reference model; DeepSeekMath: 0.04)");
            v.AtLeast(A, "UpdatesPerRollout", g.UpdatesPerRollout, 1, "μ counts optimizer passes over each rollout and must be at least 1");
            if (g.LossAggregation == GrpoLossAggregation.DrGrpo && g.RewardScaling != RewardScaling.None)
            {
                v.Add(DiagnosticRule.DrGrpoWithStdScaling, A, "RewardScaling", g.RewardScaling);
            }
        }

        private static int NearestDivisor(int n, int near)
        {
            for (int d = 0; d < n; d++)
            {
                if (near - d >= 1 && n % (near - d) == 0) return near - d;
                if (near + d <= n && n % (near + d) == 0) return near + d;
            }

            return 1;
        }

        private sealed class Collector
        {
            public List<SpecIssue> Issues { get; } = new();

            public void Add(DiagnosticRule rule, string attribute, string argument, params object[] args)
            {
                if (args.Length != rule.Placeholders)
                {
                    // A programming error, caught by the validator's tests: the message would not format.
                    throw new InvalidOperationException($"{rule.Id} takes {rule.Placeholders} message arguments, not {args.Length} ({attribute}.{argument})");
                }

                var formatted = args.Select(a => Convert.ToString(a, CultureInfo.InvariantCulture) ?? string.Empty).ToEquatableArray();
                Issues.Add(new SpecIssue(rule.Id, rule.Severity, attribute, argument, formatted));
            }

            /// <summary>A size: 1 ≤ value ≤ <see cref="MaxDimension"/>.</summary>
            public bool Size(string attribute, string argument, int value, string? what = null, int max = MaxDimension)
            {
                if (value >= 1 && value <= max) return true;
                string why = value < 1
                    ? (what ?? "a size must be at least 1")
                    : string.Format(CultureInfo.InvariantCulture, "at most {0:N0} is supported", max);
                Add(DiagnosticRule.ArgumentOutOfRange, attribute, argument, attribute, argument, value, why);
                return false;
            }

            public void Defined<TEnum>(string attribute, string argument, TEnum value)
                where TEnum : struct
            {
                if (Enum.IsDefined(typeof(TEnum), value)) return;
                string names = string.Join(", ", Enum.GetNames(typeof(TEnum)));
                Add(DiagnosticRule.ArgumentOutOfRange, attribute, argument, attribute, argument, Convert.ToInt32(value, CultureInfo.InvariantCulture),
                    $"it is not a named {typeof(TEnum).Name}; use one of {names}");
            }

            public bool AtLeast(string attribute, string argument, int value, int min, string why)
            {
                if (value >= min && value <= MaxDimension) return true;
                string range = value < min ? string.Format(CultureInfo.InvariantCulture, "it must be at least {0}; {1}", min, why)
                    : string.Format(CultureInfo.InvariantCulture, "at most {0:N0} is supported", MaxDimension);
                Add(DiagnosticRule.ArgumentOutOfRange, attribute, argument, attribute, argument, value, range);
                return false;
            }

            public bool Range(string attribute, string argument, double value, double min, double max, string why, bool lowExclusive = false)
            {
                bool ok = !double.IsNaN(value) && !double.IsInfinity(value) && (lowExclusive ? value > min : value >= min) && value <= max;
                if (!ok) Add(DiagnosticRule.ArgumentOutOfRange, attribute, argument, attribute, argument, value.ToString("R", CultureInfo.InvariantCulture), why);
                return ok;
            }
        }
    }
}
