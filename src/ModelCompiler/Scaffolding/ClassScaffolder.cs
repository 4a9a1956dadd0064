using System.Collections.Generic;
using System.Globalization;
using System.Text;
using ModelCompiler.Planning;

namespace ModelCompiler.Scaffolding
{
    /// <summary>
    /// Writes the annotated <see langword="partial"/> class that declares a <see cref="ModelSpec"/>: <c>modelc scaffold</c>
    /// prints it, <c>modelc new</c> puts it in a project. Building the class gives back the same spec, hence the same plan.
    /// Arguments equal to their attribute default are left out, except the sizes a reader wants to see.
    /// </summary>
    public static class ClassScaffolder
    {
        /// <summary>The C# source of a file declaring <paramref name="name"/> in <paramref name="ns"/>.</summary>
        public static string Write(ModelSpec spec, string name, string ns, string? source = null)
        {
            var text = new StringBuilder();
            text.Append("using ModelCompiler;\n\n");
            text.Append("namespace ").Append(ns).Append(";\n\n");
            text.Append("/// <summary>").Append(source is null ? "A DeepSeek-style model" : "The model of " + Escape(source)).Append(", scaffolded by modelc. Press F12 on the class name to read the generated plan.</summary>\n");

            var model = new Args();
            model.Positional("vocabularySize", Int(spec.VocabularySize)).Positional("hiddenSize", Int(spec.HiddenSize)).Positional("layers", Int(spec.Layers));
            model.Named("DenseLayers", Int(spec.DenseLayers), spec.DenseLayers != 0);
            model.Named("DenseIntermediateSize", Int(spec.DenseIntermediateSize), spec.DenseIntermediateSize != 0);
            model.Named("RmsNormEpsilon", Double(spec.RmsNormEpsilon), spec.RmsNormEpsilon != SpecDefaults.RmsNormEpsilon);
            model.Named("RopeTheta", Double(spec.RopeTheta), spec.RopeTheta != SpecDefaults.RopeTheta);
            model.Named("TieEmbeddings", "true", spec.TieEmbeddings);
            model.Named("SequenceLength", Int(spec.SequenceLength), spec.SequenceLength != SpecDefaults.SequenceLength);
            text.Append(model.Render("DeepSeekModel"));

            if (spec.Yarn is { } y)
            {
                var yarn = new Args().Positional("factor", Double(y.Factor)).Positional("originalContextLength", Int(y.OriginalContextLength));
                yarn.Named("BetaFast", Double(y.BetaFast), y.BetaFast != SpecDefaults.BetaFast);
                yarn.Named("BetaSlow", Double(y.BetaSlow), y.BetaSlow != SpecDefaults.BetaSlow);
                yarn.Named("MScale", Double(y.MScale), y.MScale != SpecDefaults.MScale);
                yarn.Named("MScaleAllDim", Double(y.MScaleAllDim), y.MScaleAllDim != SpecDefaults.MScale);
                text.Append(yarn.Render("YarnRopeScaling"));
            }

            var a = spec.Attention;
            var mla = new Args().Positional("heads", Int(a.Heads)).Positional("keyValueLoraRank", Int(a.KeyValueLoraRank));
            mla.Named("QueryLoraRank", Int(a.QueryLoraRank), a.QueryLoraRank != SpecDefaults.QueryLoraRank);
            mla.Named("QkNopeHeadDim", Int(a.QkNopeHeadDim), true);
            mla.Named("QkRopeHeadDim", Int(a.QkRopeHeadDim), true);
            mla.Named("ValueHeadDim", Int(a.ValueHeadDim), true);
            text.Append(mla.Render("MultiHeadLatentAttention"));

            if (spec.Moe is { } m)
            {
                var moe = new Args().Positional("routedExperts", Int(m.RoutedExperts)).Positional("activatedExperts", Int(m.ActivatedExperts))
                    .Positional("expertIntermediateSize", Int(m.ExpertIntermediateSize));
                moe.Named("SharedExperts", Int(m.SharedExperts), m.SharedExperts != 0);
                moe.Named("Scoring", "ExpertScoring." + m.Scoring, true);
                moe.Named("ExpertGroups", Int(m.ExpertGroups), m.ExpertGroups != 1);
                moe.Named("GroupsPerToken", Int(m.GroupsPerToken), m.GroupsPerToken != 1);
                moe.Named("RoutedScalingFactor", Double(m.RoutedScalingFactor), m.RoutedScalingFactor != SpecDefaults.RoutedScalingFactor);
                moe.Named("NormalizeTopK", m.NormalizeTopK ? "true" : "false", !m.NormalizeTopK);
                moe.Named("Balancing", "LoadBalancing." + m.Balancing, true);
                moe.Named("BiasUpdateSpeed", Double(m.BiasUpdateSpeed), m.BiasUpdateSpeed != SpecDefaults.BiasUpdateSpeed);
                moe.Named("SequenceBalanceLossWeight", Double(m.SequenceBalanceLossWeight), m.SequenceBalanceLossWeight != 0);
                moe.Named("ExpertBalanceLossWeight", Double(m.ExpertBalanceLossWeight), m.ExpertBalanceLossWeight != 0);
                moe.Named("DeviceBalanceLossWeight", Double(m.DeviceBalanceLossWeight), m.DeviceBalanceLossWeight != 0);
                moe.Named("CommunicationBalanceLossWeight", Double(m.CommunicationBalanceLossWeight), m.CommunicationBalanceLossWeight != 0);
                text.Append(moe.Render("MixtureOfExperts"));
            }

            if (spec.Mtp is { } mtp)
            {
                var args = new Args().Positional("depth", Int(mtp.Depth));
                args.Named("LossWeight", Double(mtp.LossWeight), mtp.LossWeight != SpecDefaults.MtpLossWeight);
                text.Append(args.Render("MultiTokenPrediction"));
            }

            var p = spec.Precision;
            if (p != PrecisionSpec.Fp32)
            {
                var args = new Args().Positional("compute", "NumericFormat." + p.Compute);
                args.Named("ActivationTile", Int(p.ActivationTile), p.ActivationTile != SpecDefaults.Fp8BlockSize);
                args.Named("WeightBlock", Int(p.WeightBlock), p.WeightBlock != SpecDefaults.Fp8BlockSize);
                args.Named("PromotionInterval", Int(p.PromotionInterval), p.PromotionInterval != SpecDefaults.PromotionInterval);
                args.Named("MasterWeights", "NumericFormat." + p.MasterWeights, p.MasterWeights != NumericFormat.Fp32);
                args.Named("OptimizerMoments", "NumericFormat." + p.OptimizerMoments, p.OptimizerMoments != NumericFormat.Fp32);
                text.Append(args.Render("PrecisionPolicy"));
            }

            if (spec.Pipeline is { } pp)
            {
                text.Append(new Args().Positional("stages", Int(pp.Stages)).Positional("schedule", "PipelineSchedule." + pp.Schedule)
                    .Positional("microBatches", Int(pp.MicroBatches)).Render("PipelineParallel"));
            }

            if (spec.Grpo is { } g)
            {
                var args = new Args().Positional("groupSize", Int(g.GroupSize));
                args.Named("Epsilon", Double(g.Epsilon), g.Epsilon != SpecDefaults.GrpoEpsilon);
                args.Named("EpsilonHigh", Double(g.EpsilonHigh), g.EpsilonHigh != 0);
                args.Named("Beta", Double(g.Beta), g.Beta != SpecDefaults.GrpoBeta);
                args.Named("LossAggregation", "GrpoLossAggregation." + g.LossAggregation, g.LossAggregation != GrpoLossAggregation.Dapo);
                args.Named("RewardScaling", "RewardScaling." + g.RewardScaling, g.RewardScaling != RewardScaling.Group);
                args.Named("UpdatesPerRollout", Int(g.UpdatesPerRollout), g.UpdatesPerRollout != SpecDefaults.GrpoUpdatesPerRollout);
                text.Append(args.Render("Grpo"));
            }

            text.Append("public partial class ").Append(name).Append(";\n");
            return text.ToString();
        }

        private static string Int(long value) => value.ToString(CultureInfo.InvariantCulture);

        private static string Double(double value) => Units.DoubleLiteral(value);

        private static string Escape(string text) => text.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");

        private sealed class Args
        {
            private readonly List<string> _items = new();

            public Args Positional(string name, string value)
            {
                _items.Add(name + ": " + value);
                return this;
            }

            public void Named(string name, string value, bool include)
            {
                if (include) _items.Add(name + " = " + value);
            }

            public string Render(string attribute)
            {
                var line = new StringBuilder("[").Append(attribute).Append('(');
                int width = line.Length;
                for (int i = 0; i < _items.Count; i++)
                {
                    string item = _items[i] + (i + 1 < _items.Count ? ", " : string.Empty);
                    if (width + item.Length > 120 && i > 0)
                    {
                        line.Append('\n').Append("    ");
                        width = 4;
                    }

                    line.Append(item);
                    width += item.Length;
                }

                return line.Append(")]\n").ToString().Replace(", \n", ",\n");
            }
        }
    }
}
