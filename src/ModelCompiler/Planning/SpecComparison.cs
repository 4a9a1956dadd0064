using System.Collections.Generic;
using System.Linq;

namespace ModelCompiler.Planning
{
    /// <summary>Whether two specs declare the same network, whatever their training-only settings.</summary>
    public static class SpecComparison
    {
        /// <summary>
        /// Whether <paramref name="checkpoint"/> and <paramref name="model"/> declare the same network (sequence length, MTP loss
        /// weight, precision policy, pipeline, expert parallelism, GRPO and balancing coefficients aside); otherwise <paramref name="difference"/>
        /// names every setting that differs.
        /// </summary>
        public static bool SameArchitecture(ModelSpec checkpoint, ModelSpec model, out string difference)
        {
            var a = Shape(checkpoint);
            var b = Shape(model);
            difference = a == b ? string.Empty : "it has " + Describe(a, b);
            return a == b;
        }

        private static ModelSpec Shape(ModelSpec s) => s with
        {
            SequenceLength = 0,
            Mtp = s.Mtp is null ? null : s.Mtp with { LossWeight = 0 },
            Precision = PrecisionSpec.Fp32,
            Pipeline = null,
            ExpertParallel = null,
            Grpo = null,
            Moe = s.Moe is null ? null : s.Moe with { BiasUpdateSpeed = 0, SequenceBalanceLossWeight = 0, ExpertBalanceLossWeight = 0, DeviceBalanceLossWeight = 0, CommunicationBalanceLossWeight = 0 },
        };

        private static string Describe(ModelSpec a, ModelSpec b)
        {
            var differences = new List<string>();
            foreach (var property in typeof(ModelSpec).GetProperties().Where(p => p.GetIndexParameters().Length == 0))
            {
                object? x = property.GetValue(a), y = property.GetValue(b);
                if (!Equals(x, y)) differences.Add($"{property.Name} = {x?.ToString() ?? "none"} where the model has {y?.ToString() ?? "none"}");
            }

            return string.Join("; ", differences);
        }
    }
}
