// The enums of the attribute DSL. This file is compiled into the ModelCompiler library and, linked, into the
// generator, so the attributes a user writes and the specs the generator plans share one definition.

namespace ModelCompiler
{
    /// <summary>How a token's affinity to each routed expert is computed from the router logits.</summary>
    public enum ExpertScoring
    {
        /// <summary>s = sigmoid(u·e), each expert scored on its own (DeepSeek-V3).</summary>
        Sigmoid,

        /// <summary>s = softmax(u·e) over all routed experts (DeepSeek-V2, V2-Lite).</summary>
        Softmax,
    }

    /// <summary>How the experts of a Mixture-of-Experts layer are kept evenly loaded during training.</summary>
    public enum LoadBalancing
    {
        /// <summary>
        /// A per-expert bias added to the scores for selection only, moved by ±γ after each step against the
        /// expert's load (DeepSeek-V3's auxiliary-loss-free balancing). Group scores are the sum of the two best
        /// biased scores in the group.
        /// </summary>
        AuxiliaryLossFree,

        /// <summary>
        /// No selection bias; balance comes only from the auxiliary losses whose weights are set
        /// (DeepSeek-V2's expert-, device- and communication-level losses). Group scores are the best score in the group.
        /// </summary>
        AuxiliaryLoss,
    }

    /// <summary>A number format for weights, activations or optimizer state.</summary>
    public enum NumericFormat
    {
        /// <summary>IEEE 754 single precision, 4 bytes.</summary>
        Fp32,

        /// <summary>bfloat16: 8 exponent bits, 7 mantissa bits, 2 bytes.</summary>
        Bf16,

        /// <summary>IEEE 754 half precision, 2 bytes.</summary>
        Fp16,

        /// <summary>FP8 E4M3 ("fn": max 448, no infinities), 1 byte, with fine-grained scales.</summary>
        Fp8E4M3,
    }

    /// <summary>The order in which pipeline stages run forward and backward passes of micro-batches.</summary>
    public enum PipelineSchedule
    {
        /// <summary>One-forward-one-backward: bubble (P−1)(F+B).</summary>
        OneFOneB,

        /// <summary>Zero-bubble H1: backward split into input- and weight-gradient parts; bubble (P−1)(F+B−2W).</summary>
        ZeroBubbleH1,

        /// <summary>DeepSeek's bidirectional DualPipe: rank r holds stages r and P−1−r; bubble (P/2−1)(F&amp;B+B−3W).</summary>
        DualPipe,

        /// <summary>DualPipeV ("cut in half"): P/2 ranks run P stages as a V; bubble (P/2−1)(F&amp;B+B−3W), no duplicated stage.</summary>
        DualPipeV,
    }

    /// <summary>How the per-token GRPO loss terms are averaged into one scalar (TRL's <c>loss_type</c>).</summary>
    public enum GrpoLossAggregation
    {
        /// <summary>Mean over tokens of each completion, then mean over completions (DeepSeekMath; length-biased).</summary>
        Grpo,

        /// <summary>Token mean over the local micro-batch.</summary>
        Bnpo,

        /// <summary>Sum over tokens divided by (completions × maximum completion length): a constant denominator (Dr. GRPO).</summary>
        DrGrpo,

        /// <summary>Token mean over the whole generation batch: one true token mean per optimizer step (DAPO).</summary>
        Dapo,
    }

    /// <summary>How group-relative advantages are scaled after subtracting the group mean.</summary>
    public enum RewardScaling
    {
        /// <summary>Divide by the group's standard deviation (plus ε).</summary>
        Group,

        /// <summary>Divide by the standard deviation of the whole batch (plus ε).</summary>
        Batch,

        /// <summary>No scaling: advantage = reward − group mean (Dr. GRPO).</summary>
        None,
    }
}
