using ModelCompiler.Planning;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Layers;

/// <summary>
/// MLA's decode cache: per layer, the normalised latent c_KV [batch, capacity, KeyValueLoraRank] and the post-RoPE shared
/// key k_pe [batch, capacity, QkRopeHeadDim], nothing else (deepseek-reference §1.5).
/// </summary>
public sealed class LatentKvCache : IDisposable
{
    private readonly LatentCacheLayer[] _layers;

    /// <summary>Allocates the cache of <paramref name="layers"/> MLA layers.</summary>
    public LatentKvCache(AttentionSpec attention, int layers, long batch, long capacity, ScalarType dtype = ScalarType.Float32)
    {
        Capacity = capacity;
        DType = dtype;
        _layers = Enumerable.Range(0, layers).Select(_ => new LatentCacheLayer(
            zeros(batch, capacity, attention.KeyValueLoraRank, dtype), zeros(batch, capacity, attention.QkRopeHeadDim, dtype))).ToArray();
    }

    /// <summary>Tokens per sequence the cache can hold.</summary>
    public long Capacity { get; }

    /// <summary>Element type of the cached values.</summary>
    public ScalarType DType { get; }

    /// <summary>The cache of layer <paramref name="layer"/>.</summary>
    public LatentCacheLayer this[int layer] => _layers[layer];

    /// <summary>Bytes allocated per cached token of one sequence, over all layers.</summary>
    public long BytesPerToken => _layers.Sum(l => (l.Latent.shape[2] + l.RotaryKey.shape[2]) * l.Latent.ElementSize);

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var layer in _layers) layer.Dispose();
    }
}

/// <summary>One layer's latent cache.</summary>
public sealed class LatentCacheLayer : IDisposable
{
    internal LatentCacheLayer(Tensor latent, Tensor rotaryKey)
    {
        Latent = latent;
        RotaryKey = rotaryKey;
    }

    /// <summary>Normalised latents c_KV, [batch, capacity, KeyValueLoraRank].</summary>
    public Tensor Latent { get; }

    /// <summary>Post-RoPE shared keys, [batch, capacity, QkRopeHeadDim].</summary>
    public Tensor RotaryKey { get; }

    /// <summary>Stores the latents and rotary keys of positions start … start+tokens−1.</summary>
    public void Write(Tensor latent, Tensor rotaryKey, long start)
    {
        long batch = latent.shape[0], tokens = latent.shape[1];
        if (start + tokens > Latent.shape[1]) throw new InvalidOperationException($"The KV cache holds {Latent.shape[1]} tokens; position {start + tokens - 1} does not fit.");
        using (no_grad())
        {
            Latent.narrow(0, 0, batch).narrow(1, start, tokens).copy_(latent);
            RotaryKey.narrow(0, 0, batch).narrow(1, start, tokens).copy_(rotaryKey);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Latent.Dispose();
        RotaryKey.Dispose();
    }
}
