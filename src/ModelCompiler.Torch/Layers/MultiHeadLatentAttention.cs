using ModelCompiler.Planning;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Layers;

/// <summary>How MLA computes attention (DeepSeek's official <c>attn_impl</c>).</summary>
public enum AttentionMode
{
    /// <summary>Materialise per-head K = [W_UK c ; k_pe] and V = W_UV c; for training and prefill.</summary>
    Naive,

    /// <summary>Fold W_UK into the query and apply W_UV after attention, reading only the latent c and k_pe (decode).</summary>
    Absorbed,
}

/// <summary>
/// Multi-Head Latent Attention (deepseek-reference §1). Keys and values come from one normalised latent c_KV of
/// KeyValueLoraRank values per token plus one rotary key k_pe shared by all heads; in <see cref="AttentionMode.Absorbed"/>
/// mode these two are all that is cached. Parameters carry the Hugging Face names: <c>q_a_proj</c>, <c>q_a_layernorm</c>,
/// <c>q_b_proj</c> (or <c>q_proj</c> without query compression), <c>kv_a_proj_with_mqa</c>, <c>kv_a_layernorm</c>,
/// <c>kv_b_proj</c>, <c>o_proj</c>.
/// </summary>
public sealed class MultiHeadLatentAttention : nn.Module<Tensor, Tensor>
{
    private readonly AttentionSpec _dims;
    [ComponentName(Name = "q_a_proj")]
    private readonly Linear? _qA;
    [ComponentName(Name = "q_a_layernorm")]
    private readonly RmsNorm? _qNorm;
    [ComponentName(Name = "q_b_proj")]
    private readonly Linear? _qB;
    [ComponentName(Name = "q_proj")]
    private readonly Linear? _q;
    [ComponentName(Name = "kv_a_proj_with_mqa")]
    private readonly Linear _kvA;
    [ComponentName(Name = "kv_a_layernorm")]
    private readonly RmsNorm _kvNorm;
    [ComponentName(Name = "kv_b_proj")]
    private readonly Linear _kvB;
    [ComponentName(Name = "o_proj")]
    private readonly Linear _o;
    private readonly RotaryEmbedding _rope;
    private readonly double _scale;
    private readonly ComputePrecision _precision;

    /// <summary>Creates the attention of a model declared by <paramref name="spec"/>.</summary>
    public MultiHeadLatentAttention(ModelSpec spec, RotaryEmbedding rope, ComputePrecision? precision = null)
        : base(nameof(MultiHeadLatentAttention))
    {
        _precision = precision ?? new ComputePrecision(ModelCompiler.NumericFormat.Fp32);
        _dims = spec.Attention;
        var a = _dims;
        long d = spec.HiddenSize, h = a.Heads;
        _rope = rope;
        _scale = RopeMath.SoftmaxScale(spec);
        if (a.QueryLoraRank > 0)
        {
            _qA = nn.Linear(d, a.QueryLoraRank, hasBias: false);
            _qNorm = new RmsNorm(a.QueryLoraRank, spec.RmsNormEpsilon);
            _qB = nn.Linear(a.QueryLoraRank, h * a.QkHeadDim, hasBias: false);
        }
        else
        {
            _q = nn.Linear(d, h * a.QkHeadDim, hasBias: false);
        }

        _kvA = nn.Linear(d, a.CacheWidth, hasBias: false);
        _kvNorm = new RmsNorm(a.KeyValueLoraRank, spec.RmsNormEpsilon);
        _kvB = nn.Linear(a.KeyValueLoraRank, h * (a.QkNopeHeadDim + a.ValueHeadDim), hasBias: false);
        _o = nn.Linear(h * a.ValueHeadDim, d, hasBias: false);
        RegisterComponents();
    }

    /// <summary>Naive attention over the whole input, positions from 0, causal.</summary>
    public override Tensor forward(Tensor input) => Forward(input, 0, AttentionMode.Naive, null);

    /// <summary>
    /// Attention for <paramref name="x"/> [batch, tokens, d] at positions <paramref name="start"/>…. With a
    /// <paramref name="cache"/> (absorbed mode only), the new latents are written at those positions and attention reads
    /// positions 0 … start+tokens−1 from it; without one, attention covers the input alone.
    /// </summary>
    public Tensor Forward(Tensor x, long start, AttentionMode mode, LatentCacheLayer? cache)
    {
        if (cache is not null && mode != AttentionMode.Absorbed) throw new ArgumentException("The latent cache is read by absorbed attention only.", nameof(mode));
        using var scope = NewDisposeScope();
        var a = _dims;
        long batch = x.shape[0], tokens = x.shape[1], h = a.Heads;

        // Queries: [batch, tokens, heads, nope + rope], RoPE on the rope part.
        var q = (_q is not null ? _precision.Linear(_q, x) : _precision.Linear(_qB!, _qNorm!.call(_precision.Linear(_qA!, x)))).view(batch, tokens, h, a.QkHeadDim);
        var qParts = q.split([a.QkNopeHeadDim, a.QkRopeHeadDim], -1);
        var qNope = qParts[0];
        var qPe = _rope.Apply(qParts[1], start);

        // The compressed KV: latent c (normalised) and the one shared rotary key.
        var kv = _precision.Linear(_kvA, x).split([a.KeyValueLoraRank, a.QkRopeHeadDim], -1);
        var latent = _kvNorm.call(kv[0]);                                                // [batch, tokens, kvr]
        var kPe = _rope.Apply(kv[1].unsqueeze(2), start).squeeze(2);                     // [batch, tokens, rope]

        Tensor output;
        if (mode == AttentionMode.Naive)
        {
            var kvUp = _precision.Linear(_kvB, latent).view(batch, tokens, h, a.QkNopeHeadDim + a.ValueHeadDim).split([a.QkNopeHeadDim, a.ValueHeadDim], -1);
            var k = cat([kvUp[0], kPe.unsqueeze(2).expand(batch, tokens, h, a.QkRopeHeadDim)], -1);
            var queries = cat([qNope, qPe], -1);
            var scores = einsum("bshd,bthd->bsht", queries, k).Times(_scale);
            var probabilities = Softmax(scores, start, tokens, tokens);
            output = einsum("bsht,bthd->bshd", probabilities, kvUp[1]);
        }
        else
        {
            var wkvB = _kvB.weight!.view(h, a.QkNopeHeadDim + a.ValueHeadDim, a.KeyValueLoraRank);
            var wUk = wkvB.narrow(1, 0, a.QkNopeHeadDim);                                 // [h, nope, kvr]
            var wUv = wkvB.narrow(1, a.QkNopeHeadDim, a.ValueHeadDim);                    // [h, v, kvr]
            var qAbsorbed = einsum("bshd,hdc->bshc", qNope, wUk);                          // [batch, tokens, h, kvr]
            Tensor latents = latent, rotaryKeys = kPe;
            long length = tokens;
            if (cache is not null)
            {
                cache.Write(latent, kPe, start);
                length = start + tokens;
                latents = cache.Latent.narrow(0, 0, batch).narrow(1, 0, length);
                rotaryKeys = cache.RotaryKey.narrow(0, 0, batch).narrow(1, 0, length);
            }

            var scores = einsum("bshc,btc->bsht", qAbsorbed, latents.to(x.dtype)).Plus(einsum("bshr,btr->bsht", qPe, rotaryKeys.to(x.dtype))).Times(_scale);
            var probabilities = Softmax(scores, cache is null ? 0 : start, tokens, length);
            var attended = einsum("bsht,btc->bshc", probabilities, latents.to(x.dtype));      // ō = p·c
            output = einsum("bshc,hdc->bshd", attended, wUv);                                  // o = W_UV ō
        }

        return _precision.Linear(_o, output.flatten(2)).MoveToOuterDisposeScope();
    }

    /// <summary>Softmax in FP32 over keys, causal: query i (position queryStart + i) sees keys at positions ≤ its own.</summary>
    private static Tensor Softmax(Tensor scores, long queryStart, long queries, long keys)
    {
        if (queries > 1)
        {
            var positions = KeptScalars.Range(queryStart, queryStart + queries, device: scores.device).view(queries, 1);
            var future = KeptScalars.Range(0, keys, device: scores.device).view(1, keys) > positions;                  // [queries, keys]
            scores = scores.masked_fill(future.view(1, queries, 1, keys), KeptScalars.NegativeInfinity);
        }

        return scores.to(ScalarType.Float32).softmax(-1).to(scores.dtype);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _qA?.Dispose();
            _qNorm?.Dispose();
            _qB?.Dispose();
            _q?.Dispose();
            _kvA.Dispose();
            _kvNorm.Dispose();
            _kvB.Dispose();
            _o.Dispose();
        }

        base.Dispose(disposing);
    }
}
