using ModelCompiler.Planning;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Layers;

/// <summary>
/// One pre-norm decoder block: x += self_attn(input_layernorm(x)); x += mlp(post_attention_layernorm(x)), where mlp is a
/// dense SwiGLU or DeepSeekMoE. Parameters: <c>input_layernorm</c>, <c>self_attn.*</c>, <c>post_attention_layernorm</c>, <c>mlp.*</c>.
/// </summary>
public class DecoderLayer : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "input_layernorm")]
    private readonly RmsNorm _attentionNorm;
    [ComponentName(Name = "self_attn")]
    private readonly MultiHeadLatentAttention _attention;
    [ComponentName(Name = "post_attention_layernorm")]
    private readonly RmsNorm _ffnNorm;
    [ComponentName(Name = "mlp")]
    private readonly nn.Module<Tensor, Tensor> _ffn;

    /// <summary>Creates a block of the model declared by <paramref name="spec"/>, with a MoE FFN when <paramref name="moe"/> is set.</summary>
    public DecoderLayer(ModelSpec spec, RotaryEmbedding rope, bool moe, ComputePrecision? precision = null, string? name = null)
        : base(name ?? nameof(DecoderLayer))
    {
        _attentionNorm = new RmsNorm(spec.HiddenSize, spec.RmsNormEpsilon);
        _attention = new MultiHeadLatentAttention(spec, rope, precision);
        _ffnNorm = new RmsNorm(spec.HiddenSize, spec.RmsNormEpsilon);
        _ffn = moe ? new MixtureOfExperts(spec.HiddenSize, spec.Moe!, precision) : new SwiGlu(spec.HiddenSize, spec.DenseIntermediateSize, precision);

        // A derived module (MtpModule) registers once its own fields are set; registration walks the base fields too.
        if (GetType() == typeof(DecoderLayer)) RegisterComponents();
    }

    /// <summary>The Mixture-of-Experts FFN, or null for a dense layer.</summary>
    public MixtureOfExperts? Moe => _ffn as MixtureOfExperts;

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => Forward(input, 0, AttentionMode.Naive, null);

    /// <summary>The block at positions <paramref name="start"/>…, optionally through the latent cache.</summary>
    public Tensor Forward(Tensor x, long start, AttentionMode mode, LatentCacheLayer? cache)
    {
        using var scope = NewDisposeScope();
        var h = x.Plus(_attention.Forward(_attentionNorm.call(x), start, mode, cache));
        return h.Plus(_ffn.call(_ffnNorm.call(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// A Multi-Token Prediction module (deepseek-reference §3): h' = eh_proj([enorm(embedding) ; hnorm(hidden)]) (embedding
/// first, the checkpoint's order), one decoder block, then shared_head.norm; the embedding and output head are the main
/// model's. Stored as <c>model.layers.{Layers + k − 1}</c> with <c>enorm</c>, <c>hnorm</c>, <c>eh_proj</c>,
/// <c>shared_head.norm</c> beside the block's own parameters.
/// </summary>
public sealed class MtpModule : DecoderLayer
{
    [ComponentName(Name = "enorm")]
    private readonly RmsNorm _embeddingNorm;
    [ComponentName(Name = "hnorm")]
    private readonly RmsNorm _hiddenNorm;
    [ComponentName(Name = "eh_proj")]
    private readonly TorchSharp.Modules.Linear _projection;
    [ComponentName(Name = "shared_head")]
    private readonly SharedHead _head;
    private readonly ComputePrecision _precision;

    /// <summary>Creates an MTP module.</summary>
    public MtpModule(ModelSpec spec, RotaryEmbedding rope, ComputePrecision? precision = null)
        : base(spec, rope, spec.Moe is not null, precision, nameof(MtpModule))
    {
        _precision = precision ?? new ComputePrecision(ModelCompiler.NumericFormat.Fp32);
        _embeddingNorm = new RmsNorm(spec.HiddenSize, spec.RmsNormEpsilon);
        _hiddenNorm = new RmsNorm(spec.HiddenSize, spec.RmsNormEpsilon);
        _projection = nn.Linear(2L * spec.HiddenSize, spec.HiddenSize, hasBias: false);
        _head = new SharedHead(spec.HiddenSize, spec.RmsNormEpsilon);
        RegisterComponents();
    }

    /// <summary>
    /// The module's hidden state for positions 0 … T−1 given the previous depth's hidden state [B, T, d] and the embeddings
    /// of the tokens k positions ahead [B, T, d]; returns the normalised state that the shared head turns into logits.
    /// </summary>
    public Tensor Predict(Tensor previousHidden, Tensor shiftedEmbeddings) => Predict(previousHidden, shiftedEmbeddings, 0, AttentionMode.Naive, null);

    /// <summary>
    /// As <see cref="Predict(Tensor, Tensor)"/> for positions <paramref name="start"/>…, through the module's own latent cache
    /// (absorbed mode), for drafting tokens one step at a time.
    /// </summary>
    public Tensor Predict(Tensor previousHidden, Tensor shiftedEmbeddings, long start, AttentionMode mode, LatentCacheLayer? cache)
    {
        using var scope = NewDisposeScope();
        var combined = _precision.Linear(_projection, cat([_embeddingNorm.call(shiftedEmbeddings), _hiddenNorm.call(previousHidden)], -1));
        var hidden = Forward(combined, start, mode, cache);
        return hidden.MoveToOuterDisposeScope();
    }

    /// <summary>shared_head.norm of <paramref name="hidden"/>.</summary>
    public Tensor Normalise(Tensor hidden) => _head.call(hidden);

    private sealed class SharedHead : nn.Module<Tensor, Tensor>
    {
        [ComponentName(Name = "norm")]
        private readonly RmsNorm _norm;

        public SharedHead(long hidden, double epsilon)
            : base(nameof(SharedHead))
        {
            _norm = new RmsNorm(hidden, epsilon);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input) => _norm.call(input);
    }
}
