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
