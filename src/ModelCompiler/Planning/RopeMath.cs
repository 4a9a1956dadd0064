using System;

namespace ModelCompiler.Planning
{
    /// <summary>
    /// The scalar side of RoPE with YaRN (deepseek-reference §1.4, §7.1), shared by the generator's constants and the runtime's
    /// rotary layer: the softmax scale and the frequency correction range.
    /// </summary>
    public static class RopeMath
    {
        /// <summary>mscale = 0.1·m·ln(s) + 1 for s &gt; 1, else 1.</summary>
        public static double MScale(double factor, double m) => factor <= 1 ? 1.0 : (0.1 * m * Math.Log(factor)) + 1.0;

        /// <summary>
        /// The attention softmax scale: 1/√(qk_nope + qk_rope), times mscale² when YaRN is declared (DeepSeek's official code,
        /// which applies it whenever the context exceeds the original one, the reason to declare YaRN at all).
        /// </summary>
        public static double SoftmaxScale(ModelSpec spec)
        {
            double scale = 1.0 / Math.Sqrt(spec.Attention.QkHeadDim);
            if (spec.Yarn is { } yarn)
            {
                double mscale = MScale(yarn.Factor, yarn.MScale);
                scale *= mscale * mscale;
            }

            return scale;
        }

        /// <summary>
        /// The rotation frequency of each channel pair of a <paramref name="ropeDim"/>-wide rotary slice: θ^(−2i/d); with YaRN
        /// the pairs between the β_fast and β_slow correction dimensions blend linearly from f_i to f_i/s (deepseek-reference
        /// §7.1). Pair i at position p turns by p · f_i.
        /// </summary>
        public static double[] Frequencies(int ropeDim, double theta, YarnSpec? yarn)
        {
            var frequencies = new double[ropeDim / 2];
            for (int i = 0; i < frequencies.Length; i++) frequencies[i] = 1.0 / Math.Pow(theta, 2.0 * i / ropeDim);
            if (yarn is null) return frequencies;
            var (low, high) = CorrectionRange(ropeDim, theta, yarn);
            double highBound = low == high ? high + 0.001 : high;
            for (int i = 0; i < frequencies.Length; i++)
            {
                double ramp = Math.Min(Math.Max((i - low) / (highBound - low), 0.0), 1.0);
                frequencies[i] = (frequencies[i] / yarn.Factor * ramp) + (frequencies[i] * (1 - ramp));
            }

            return frequencies;
        }

        /// <summary>
        /// The YaRN correction range [low, high] in frequency-pair indices: pairs below low keep θ^(−2i/d), pairs above high
        /// are divided by the factor, pairs between blend linearly (DeepSeek-V3: 10 and 23).
        /// </summary>
        public static (int Low, int High) CorrectionRange(int ropeDim, double theta, YarnSpec yarn)
        {
            double CorrectionDim(double rotations) => ropeDim * Math.Log(yarn.OriginalContextLength / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
            int low = (int)Math.Max(Math.Floor(CorrectionDim(yarn.BetaFast)), 0);
            int high = (int)Math.Min(Math.Ceiling(CorrectionDim(yarn.BetaSlow)), ropeDim - 1);
            return (low, high);
        }
    }
}
