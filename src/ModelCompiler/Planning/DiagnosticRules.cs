using System;
using System.Globalization;
using System.Collections.Generic;

namespace ModelCompiler.Planning
{
    /// <summary>How serious a <see cref="DiagnosticRule"/> is.</summary>
    public enum RuleSeverity
    {
        /// <summary>A fallback was taken or a tuning hint applies.</summary>
        Info,

        /// <summary>Code is generated but is probably not what the user meant, or will be slow.</summary>
        Warning,

        /// <summary>Nothing, or nothing correct, can be generated.</summary>
        Error,
    }

    /// <summary>
    /// One validation rule with its stable id. The generator reports these as Roslyn diagnostics on the offending attribute
    /// argument; <c>modelc</c> prints them for a config.json. Every id has a page docs/diagnostics/{Id}.md and a row in the
    /// generator's AnalyzerReleases files (a test keeps the three in step). Never reuse or renumber an id.
    /// </summary>
    public sealed class DiagnosticRule
    {
        private DiagnosticRule(string id, RuleSeverity severity, string category, string title, string messageFormat, string description)
        {
            Id = id;
            Severity = severity;
            Category = category;
            Title = title;
            MessageFormat = messageFormat;
            Description = description;
        }

        /// <summary>The id, MC plus four digits.</summary>
        public string Id { get; }

        /// <summary>Severity.</summary>
        public RuleSeverity Severity { get; }

        /// <summary>Category, <c>MC.Usage</c>, <c>MC.Architecture</c>, ….</summary>
        public string Category { get; }

        /// <summary>A short noun phrase.</summary>
        public string Title { get; }

        /// <summary>The message, a composite format string.</summary>
        public string MessageFormat { get; }

        /// <summary>How to fix it.</summary>
        public string Description { get; }

        /// <summary>How many arguments <see cref="MessageFormat"/> takes: one more than its largest <c>{n}</c>.</summary>
        public int Placeholders
        {
            get
            {
                int count = 0;
                for (int i = 0; i < MessageFormat.Length; i++)
                {
                    if (MessageFormat[i] != '{') continue;
                    if (i + 1 < MessageFormat.Length && MessageFormat[i + 1] == '{')
                    {
                        i++;
                        continue;
                    }

                    int end = i + 1;
                    while (end < MessageFormat.Length && char.IsDigit(MessageFormat[end])) end++;
                    if (end > i + 1) count = Math.Max(count, int.Parse(MessageFormat.Substring(i + 1, end - i - 1), CultureInfo.InvariantCulture) + 1);
                }

                return count;
            }
        }

        /// <summary>The link to the rule's documentation page.</summary>
        public string HelpLink => "docs/diagnostics/" + Id + ".md";

        private const string Usage = "MC.Usage";
        private const string Architecture = "MC.Architecture";
        private const string Kernels = "MC.Kernels";
        private const string Training = "MC.Training";
        private const string Pipeline = "MC.Pipeline";
        private const string KernelPlan = "MC.KernelPlan";
        private const string Generator = "MC.Generator";

        /// <summary>MC1001: "The class '{0}' carries [DeepSeekModel] but is not partial; declare it 'partial' so the generator can add the generated members".</summary>
        public static readonly DiagnosticRule ModelClassNotPartial = new("MC1001", RuleSeverity.Error, Usage,
            "Model class must be partial",
            "The class '{0}' carries [DeepSeekModel] but is not partial; declare it 'partial' so the generator can add the generated members",
            "The generator adds constants, the plan and (later) the module and training code to the model class itself, which requires every declaration of it to be partial.");

        /// <summary>MC1002: "The model class '{0}' is nested in '{1}', which is not partial; declare '{1}' partial".</summary>
        public static readonly DiagnosticRule ContainingTypeNotPartial = new("MC1002", RuleSeverity.Error, Usage,
            "Containing type must be partial",
            "The model class '{0}' is nested in '{1}', which is not partial; declare '{1}' partial",
            "Generated code re-opens every type around the model class, so each of them must be partial.");

        /// <summary>MC1003: "[{0}] on '{1}' has no effect without [DeepSeekModel]; add [DeepSeekModel(...)] to '{1}' or remove [{0}]".</summary>
        public static readonly DiagnosticRule ComponentWithoutModel = new("MC1003", RuleSeverity.Error, Usage,
            "Model attribute on a class that is not a model",
            "[{0}] on '{1}' has no effect without [DeepSeekModel]; add [DeepSeekModel(...)] to '{1}' or remove [{0}]",
            "Attention, experts, MTP, precision, pipeline and GRPO attributes describe parts of a model and are only read on a class that carries [DeepSeekModel].");

        /// <summary>MC1004: "The model class '{0}' is generic; a model class cannot have type parameters".</summary>
        public static readonly DiagnosticRule GenericModelClass = new("MC1004", RuleSeverity.Error, Usage,
            "Model class cannot be generic",
            "The model class '{0}' is generic; a model class cannot have type parameters",
            "Every dimension of a model is a compile-time constant; declare one non-generic class per model.");

        /// <summary>MC1005: "'{0}' declares [DeepSeekModel] without [MultiHeadLatentAttention]; every layer needs its attention declared".</summary>
        public static readonly DiagnosticRule MissingAttention = new("MC1005", RuleSeverity.Error, Usage,
            "Attention is not declared",
            "'{0}' declares [DeepSeekModel] without [MultiHeadLatentAttention]; every layer needs its attention declared",
            "Add [MultiHeadLatentAttention(heads, keyValueLoraRank)] with the attention dimensions of the model.");

        /// <summary>MC1006: "{0}.{1} = {2} is out of range: {3}".</summary>
        public static readonly DiagnosticRule ArgumentOutOfRange = new("MC1006", RuleSeverity.Error, Usage,
            "Attribute argument out of range",
            "{0}.{1} = {2} is out of range: {3}",
            "Sizes must be positive, weights and coefficients non-negative, and every value within the range the message names.");

        /// <summary>MC1007: "'{0}' is a record; declare the model as a 'partial class'".</summary>
        public static readonly DiagnosticRule ModelClassIsRecord = new("MC1007", RuleSeverity.Error, Usage,
            "Model class cannot be a record",
            "'{0}' is a record; declare the model as a 'partial class'",
            "The generator re-opens the model as a partial class, and C# does not let a record and a class share a partial type; a model is a set of constants and generated members, with no value equality to gain from a record.");

        /// <summary>MC2001: "DeepSeekModel.DenseLayers = {0} exceeds Layers = {1}; at most {1} layers can be dense".</summary>
        public static readonly DiagnosticRule DenseLayersExceedLayers = new("MC2001", RuleSeverity.Error, Architecture,
            "More dense layers than layers",
            "DeepSeekModel.DenseLayers = {0} exceeds Layers = {1}; at most {1} layers can be dense",
            "DenseLayers counts the leading layers whose FFN is dense; it must lie between 0 and Layers.");

        /// <summary>MC2002: "DeepSeekModel.DenseIntermediateSize = {0} but {1} layer(s) have a dense FFN; set it to the dense SwiGLU width".</summary>
        public static readonly DiagnosticRule DenseWidthMissing = new("MC2002", RuleSeverity.Error, Architecture,
            "Dense FFN width missing",
            "DeepSeekModel.DenseIntermediateSize = {0} but {1} layer(s) have a dense FFN; set it to the dense SwiGLU width",
            "Layers before DenseLayers (or every layer, without [MixtureOfExperts]) use a dense SwiGLU whose width DenseIntermediateSize sets (DeepSeek-V3: 18432).");

        /// <summary>MC2003: "MixtureOfExperts.ActivatedExperts = {0} exceeds RoutedExperts = {1}; a token cannot be routed to more experts than exist".</summary>
        public static readonly DiagnosticRule ActivatedExceedsRouted = new("MC2003", RuleSeverity.Error, Architecture,
            "More activated than routed experts",
            "MixtureOfExperts.ActivatedExperts = {0} exceeds RoutedExperts = {1}; a token cannot be routed to more experts than exist",
            "ActivatedExperts (top-k) must be at most RoutedExperts.");

        /// <summary>MC2004: "MixtureOfExperts.ExpertGroups = {0} does not divide RoutedExperts = {1}; groups must be equal, for example {2}".</summary>
        public static readonly DiagnosticRule GroupsDoNotDivideExperts = new("MC2004", RuleSeverity.Error, Architecture,
            "Expert groups do not divide the experts",
            "MixtureOfExperts.ExpertGroups = {0} does not divide RoutedExperts = {1}; groups must be equal, for example {2}",
            "Group-limited routing splits the routed experts into equal contiguous groups (DeepSeek-V3: 256 experts in 8 groups of 32).");

        /// <summary>MC2005: "MixtureOfExperts.GroupsPerToken = {0} exceeds ExpertGroups = {1}".</summary>
        public static readonly DiagnosticRule GroupsPerTokenExceedGroups = new("MC2005", RuleSeverity.Error, Architecture,
            "More kept groups than groups",
            "MixtureOfExperts.GroupsPerToken = {0} exceeds ExpertGroups = {1}",
            "GroupsPerToken is how many of the ExpertGroups a token may use; it must be between 1 and ExpertGroups.");

        /// <summary>MC2006: "MixtureOfExperts.GroupsPerToken × experts per group = {0} × {1} = {2} is fewer than ActivatedExperts = {3}; top-k cannot find {3} experts in the kept groups".</summary>
        public static readonly DiagnosticRule KeptGroupsTooSmall = new("MC2006", RuleSeverity.Error, Architecture,
            "Kept groups hold too few experts",
            "MixtureOfExperts.GroupsPerToken × experts per group = {0} × {1} = {2} is fewer than ActivatedExperts = {3}; top-k cannot find {3} experts in the kept groups",
            "Raise GroupsPerToken or lower ActivatedExperts so that the kept groups hold at least ActivatedExperts experts.");

        /// <summary>MC2007: "MultiHeadLatentAttention.QkRopeHeadDim = {0} is odd; RoPE rotates channel pairs, so it must be even (for example {1})".</summary>
        public static readonly DiagnosticRule OddRopeDimension = new("MC2007", RuleSeverity.Error, Architecture,
            "Rotary dimension is odd",
            "MultiHeadLatentAttention.QkRopeHeadDim = {0} is odd; RoPE rotates channel pairs, so it must be even (for example {1})",
            "DeepSeek's RoPE treats channels (2i, 2i+1) as one complex number; the rotary width must be even (DeepSeek: 64).");

        /// <summary>MC2008: "YarnRopeScaling.BetaFast = {0} must exceed BetaSlow = {1}".</summary>
        public static readonly DiagnosticRule YarnBetaOrder = new("MC2008", RuleSeverity.Error, Architecture,
            "YaRN correction range is inverted",
            "YarnRopeScaling.BetaFast = {0} must exceed BetaSlow = {1}",
            "β_fast bounds the high-frequency end of the blend and β_slow the low-frequency end (DeepSeek-V3: 32 and 1).");

        /// <summary>MC2009: "The model is too large to plan: {0}".</summary>
        public static readonly DiagnosticRule ModelTooLarge = new("MC2009", RuleSeverity.Error, Architecture,
            "Model too large",
            "The model is too large to plan: {0}",
            "A parameter or FLOP count exceeds 2^63; check the sizes for a typo.");

        /// <summary>MC2010: "MultiHeadLatentAttention.KeyValueLoraRank = {0} is not a multiple of 64; the latent is tiled in 64s, so {1} would run faster".</summary>
        public static readonly DiagnosticRule KvLoraRankNotMultipleOf64 = new("MC2010", RuleSeverity.Warning, Architecture,
            "KV latent width not a multiple of 64",
            "MultiHeadLatentAttention.KeyValueLoraRank = {0} is not a multiple of 64; the latent is tiled in 64s, so {1} would run faster",
            "Decode attention reads the latent cache in 64-wide tiles; a ragged tail costs a masked tile per head.");

        /// <summary>MC2011: "[MixtureOfExperts] is declared but DenseLayers = Layers = {0}, so no layer uses it".</summary>
        public static readonly DiagnosticRule MoeUnused = new("MC2011", RuleSeverity.Warning, Architecture,
            "Mixture-of-Experts declared but unused",
            "[MixtureOfExperts] is declared but DenseLayers = Layers = {0}, so no layer uses it",
            "Lower DenseLayers so that some layers are MoE layers, or remove [MixtureOfExperts].");

        /// <summary>MC2012: "MixtureOfExperts.Balancing = AuxiliaryLoss with every balance-loss weight 0: nothing keeps the experts balanced".</summary>
        public static readonly DiagnosticRule NoBalancing = new("MC2012", RuleSeverity.Warning, Architecture,
            "Nothing balances the experts",
            "MixtureOfExperts.Balancing = AuxiliaryLoss with every balance-loss weight 0: nothing keeps the experts balanced",
            "Set ExpertBalanceLossWeight (V2-Lite: 0.001), or use Balancing = AuxiliaryLossFree (DeepSeek-V3).");

        /// <summary>MC2013: "MixtureOfExperts.BiasUpdateSpeed = {0} has no effect with Balancing = AuxiliaryLoss, which keeps no routing bias".</summary>
        public static readonly DiagnosticRule BiasSpeedIgnored = new("MC2013", RuleSeverity.Warning, Architecture,
            "Bias update speed has no effect",
            "MixtureOfExperts.BiasUpdateSpeed = {0} has no effect with Balancing = AuxiliaryLoss, which keeps no routing bias",
            "Remove BiasUpdateSpeed, or use Balancing = AuxiliaryLossFree (DeepSeek-V3) where the bias it moves exists.");

        /// <summary>MC2014: "MixtureOfExperts.RoutedExperts = {0} do not divide over ExpertParallel.Ranks = {1}".</summary>
        public static readonly DiagnosticRule ExpertsDoNotDivideOverRanks = new("MC2014", RuleSeverity.Error, Architecture,
            "Experts do not divide over the expert-parallel ranks",
            "MixtureOfExperts.RoutedExperts = {0} do not divide over ExpertParallel.Ranks = {1}",
            "Each rank holds the same number of experts: choose Ranks among the divisors of RoutedExperts (DeepSeek-V3: 256 over 64).");

        /// <summary>MC2015: "MixtureOfExperts.ExpertGroups = {0}, but the {1} expert-parallel ranks make {2} nodes of {3}: …".</summary>
        public static readonly DiagnosticRule GroupsAreNotNodes = new("MC2015", RuleSeverity.Warning, Architecture,
            "Expert groups are not the nodes",
            "MixtureOfExperts.ExpertGroups = {0}, but the {1} expert-parallel ranks make {2} nodes of {3}: GroupsPerToken = {4} does not bound how many nodes a token's hidden state reaches",
            "Node-limited routing keeps a token within GroupsPerToken groups; only when the groups are the nodes does that bound the cross-node all-to-all (DeepSeek-V3: 8 groups on 8 nodes).");

        /// <summary>MC2016: "[ExpertParallel] needs [MixtureOfExperts]: this model has no routed experts to spread".</summary>
        public static readonly DiagnosticRule ExpertParallelWithoutMoe = new("MC2016", RuleSeverity.Error, Architecture,
            "Expert parallelism without experts",
            "[ExpertParallel] needs [MixtureOfExperts]: this model has no routed experts to spread",
            "Declare [MixtureOfExperts], or remove [ExpertParallel].");

        /// <summary>MC3001: "PrecisionPolicy.Compute = Fp8E4M3 but {0} = {1} is not a multiple of the {2}-wide block; partial blocks are padded and waste FP8 throughput".</summary>
        public static readonly DiagnosticRule Fp8DimensionNotAligned = new("MC3001", RuleSeverity.Warning, Kernels,
            "Dimension not aligned to the FP8 block",
            "PrecisionPolicy.Compute = Fp8E4M3 but {0} = {1} is not a multiple of the {2}-wide block; partial blocks are padded and waste FP8 throughput",
            "FP8 GEMM inputs are scaled per 1×128 tile and 128×128 block; dimensions that are multiples of the block keep every tile full.");

        /// <summary>MC3002: "PrecisionPolicy.{0} = {1} is not valid: {2}".</summary>
        public static readonly DiagnosticRule InvalidPrecision = new("MC3002", RuleSeverity.Error, Kernels,
            "Invalid precision setting",
            "PrecisionPolicy.{0} = {1} is not valid: {2}",
            "Tiles and blocks are positive multiples of 32; promotion intervals divide the activation tile; master weights and optimizer moments cannot be FP8.");

        /// <summary>MC4001: "{0} is not generated for this declaration: {1}".</summary>
        public static readonly DiagnosticRule KernelNotGenerated = new("MC4001", RuleSeverity.Info, KernelPlan,
            "Kernel not generated for this declaration",
            "{0} is not generated for this declaration: {1}",
            "A kernel the model would use on a GPU cannot be specialised to these widths, so a slower general path runs instead (or, for an FP8 kernel, none). The kernel plan (modelc plan --kernels) lists every kernel and why; change the argument named in the message if the fast kernel matters.");

        /// <summary>MC5001: "Grpo.EpsilonHigh = {0} is below Epsilon = {1}; the upper clip range cannot be narrower than the lower one".</summary>
        public static readonly DiagnosticRule GrpoClipRangeInverted = new("MC5001", RuleSeverity.Error, Training,
            "GRPO upper clip below lower clip",
            "Grpo.EpsilonHigh = {0} is below Epsilon = {1}; the upper clip range cannot be narrower than the lower one",
            "Leave EpsilonHigh at 0 to use Epsilon for both sides, or set it at least as large (DAPO: 0.2 / 0.28).");

        /// <summary>MC5002: "Grpo.LossAggregation = DrGrpo with RewardScaling = {0}: Dr. GRPO removes the standard-deviation scaling; use RewardScaling.None".</summary>
        public static readonly DiagnosticRule DrGrpoWithStdScaling = new("MC5002", RuleSeverity.Warning, Training,
            "Dr. GRPO with std scaling",
            "Grpo.LossAggregation = DrGrpo with RewardScaling = {0}: Dr. GRPO removes the standard-deviation scaling; use RewardScaling.None",
            "Dr. GRPO's two fixes are the constant denominator and no division by the group's standard deviation.");

        /// <summary>MC6001: "PipelineParallel.Stages = {0} exceeds Layers = {1}; every stage needs at least one layer".</summary>
        public static readonly DiagnosticRule MoreStagesThanLayers = new("MC6001", RuleSeverity.Error, Pipeline,
            "More pipeline stages than layers",
            "PipelineParallel.Stages = {0} exceeds Layers = {1}; every stage needs at least one layer",
            "Use at most as many stages as layers.");

        /// <summary>MC6002: "PipelineParallel.Stages = {0} is odd; {1} needs an even number of stages".</summary>
        public static readonly DiagnosticRule OddStagesForDualPipe = new("MC6002", RuleSeverity.Error, Pipeline,
            "DualPipe needs an even stage count",
            "PipelineParallel.Stages = {0} is odd; {1} needs an even number of stages",
            "DualPipe places stages i and P−1−i on one rank and DualPipeV folds P stages onto P/2 ranks; both need P even.");

        /// <summary>MC6003: "PipelineParallel.MicroBatches = {0} is too few for {1} with {2} stages: it needs {3}".</summary>
        public static readonly DiagnosticRule TooFewMicroBatches = new("MC6003", RuleSeverity.Error, Pipeline,
            "Too few micro-batches for the schedule",
            "PipelineParallel.MicroBatches = {0} is too few for {1} with {2} stages: it needs {3}",
            "DualPipe splits the micro-batches between its two directions and needs an even count of at least 2P; DualPipeV needs at least P.");

        /// <summary>MC6004: "PipelineParallel.MicroBatches = {0} is fewer than Stages = {1}: the pipeline never fills and most of each step is bubble".</summary>
        public static readonly DiagnosticRule PipelineNeverFills = new("MC6004", RuleSeverity.Warning, Pipeline,
            "Pipeline never fills",
            "PipelineParallel.MicroBatches = {0} is fewer than Stages = {1}: the pipeline never fills and most of each step is bubble",
            "With M micro-batches and P stages the 1F1B bubble is (P−1)/(M+P−1) of the step; use M ≥ P, ideally M ≥ 4P.");

        /// <summary>MC9001: "The ModelCompiler generator failed on '{0}': {1}; please report this with the declaration".</summary>
        public static readonly DiagnosticRule InternalError = new("MC9001", RuleSeverity.Error, Generator,
            "Generator internal error",
            "The ModelCompiler generator failed on '{0}': {1}; please report this with the declaration",
            "This is a bug in ModelCompiler, not in your code.");

        /// <summary>The rule with id <paramref name="id"/>.</summary>
        /// <exception cref="KeyNotFoundException">No rule has that id.</exception>
        public static DiagnosticRule Find(string id)
        {
            foreach (var rule in All)
            {
                if (rule.Id == id) return rule;
            }

            throw new KeyNotFoundException("No ModelCompiler diagnostic rule has the id " + id);
        }

        /// <summary>Every rule, in id order.</summary>
        public static IReadOnlyList<DiagnosticRule> All { get; } = new[]
        {
            ModelClassNotPartial, ContainingTypeNotPartial, ComponentWithoutModel, GenericModelClass, MissingAttention, ArgumentOutOfRange, ModelClassIsRecord,
            DenseLayersExceedLayers, DenseWidthMissing, ActivatedExceedsRouted, GroupsDoNotDivideExperts, GroupsPerTokenExceedGroups,
            KeptGroupsTooSmall, OddRopeDimension, YarnBetaOrder, ModelTooLarge, KvLoraRankNotMultipleOf64, MoeUnused, NoBalancing, BiasSpeedIgnored,
            ExpertsDoNotDivideOverRanks, GroupsAreNotNodes, ExpertParallelWithoutMoe,
            Fp8DimensionNotAligned, InvalidPrecision,
            KernelNotGenerated,
            GrpoClipRangeInverted, DrGrpoWithStdScaling,
            MoreStagesThanLayers, OddStagesForDualPipe, TooFewMicroBatches, PipelineNeverFills,
            InternalError,
        };
    }
}
