using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Checkpoints;
using ModelCompiler.Planning;

namespace ModelCompiler.Inference;

/// <summary>One decoder layer's weights on the device, by their Hugging Face names.</summary>
internal sealed class LayerWeights : IDisposable
{
    public required DeviceWeight InputNorm { get; init; }

    public DeviceWeight? QueryA { get; init; }

    public DeviceWeight? QueryNorm { get; init; }

    public DeviceWeight? QueryB { get; init; }

    public DeviceWeight? Query { get; init; }

    public required DeviceWeight KeyValueA { get; init; }

    public required DeviceWeight KeyValueNorm { get; init; }

    public required DeviceWeight KeyValueB { get; init; }

    public required DeviceWeight Output { get; init; }

    public required DeviceWeight PostNorm { get; init; }

    /// <summary>The dense FFN, or the MoE layer's shared experts: gate, up, down.</summary>
    public (DeviceWeight Gate, DeviceWeight Up, DeviceWeight Down)? Mlp { get; init; }

    /// <summary>The router [experts, d] (FP32) and its selection bias.</summary>
    public DeviceWeight? Router { get; init; }

    public DeviceWeight? RouterBias { get; init; }

    /// <summary>The routed experts stacked: gate and up [experts, width, d], down [experts, d, width].</summary>
    public (DeviceWeight Gate, DeviceWeight Up, DeviceWeight Down)? Experts { get; init; }

    public IEnumerable<DeviceWeight> All => new[]
    {
        InputNorm, QueryA, QueryNorm, QueryB, Query, KeyValueA, KeyValueNorm, KeyValueB, Output, PostNorm, Mlp?.Gate, Mlp?.Up, Mlp?.Down,
        Router, RouterBias, Experts?.Gate, Experts?.Up, Experts?.Down,
    }.Where(w => w is not null)!;

    public void Dispose()
    {
        foreach (var weight in All) weight.Dispose();
    }
}

/// <summary>
/// A declared model's weights in device memory, loaded by their Hugging Face names from a checkpoint folder (float32, bf16,
/// or FP8 dequantised on load) or drawn at random on the device for benchmarks; matrices in the engine's precision, norms and
/// the router in FP32. The size is checked against the device's memory before anything is allocated.
/// </summary>
public sealed class DeviceModel : IDisposable
{
    private readonly List<LayerWeights> _layers;

    private DeviceModel(ModelSpec spec, EnginePrecision precision, EmptyViews empty, DeviceWeight embedding, List<LayerWeights> layers, DeviceWeight norm, DeviceWeight head)
    {
        Spec = spec;
        Precision = precision;
        Empty = empty;
        Embedding = embedding;
        _layers = layers;
        Norm = norm;
        Head = head;
    }

    /// <summary>The model.</summary>
    public ModelSpec Spec { get; }

    /// <summary>The format of its matrices.</summary>
    public EnginePrecision Precision { get; }

    /// <summary>Bytes of weights on the device.</summary>
    public long Bytes => new[] { Embedding, Norm, Head }.Concat(_layers.SelectMany(l => l.All)).Distinct().Sum(w => w.Bytes);

    internal EmptyViews Empty { get; }

    internal DeviceWeight Embedding { get; }

    internal IReadOnlyList<LayerWeights> Layers => _layers;

    internal DeviceWeight Norm { get; }

    internal DeviceWeight Head { get; }

    /// <summary>Bytes the model's weights take in <paramref name="precision"/> (norms, router and bias in FP32).</summary>
    public static long WeightBytes(ModelSpec spec, EnginePrecision precision)
    {
        int matrix = precision == EnginePrecision.Float32 ? 4 : 2;
        long total = 0;
        foreach (var (_, shape, fp32) in Tensors(spec)) total += shape.Aggregate(1L, (a, b) => a * b) * (fp32 ? 4 : matrix);
        return total;
    }

    /// <summary>
    /// Loads <paramref name="checkpoint"/>'s weights (the main model; MTP modules are not used for inference here) onto
    /// <paramref name="accelerator"/>. Every tensor's shape is checked against the spec first.
    /// </summary>
    /// <exception cref="CheckpointException">A tensor is missing, mis-shaped or not finite.</exception>
    /// <exception cref="InsufficientDeviceMemoryException">The weights do not fit in the device's memory.</exception>
    public static DeviceModel Load(Accelerator accelerator, CheckpointFolder checkpoint, EnginePrecision precision) => Load(accelerator, checkpoint, precision, roundToBf16: false);

    /// <summary>
    /// As <see cref="Load(Accelerator, CheckpointFolder, EnginePrecision)"/>; with <paramref name="roundToBf16"/> the matrices are
    /// rounded to bf16 and kept in FP32: the bf16 mode's weights computed exactly, which tells its error from the weights'.
    /// </summary>
    internal static DeviceModel Load(Accelerator accelerator, CheckpointFolder checkpoint, EnginePrecision precision, bool roundToBf16)
    {
        var spec = checkpoint.Spec;
        foreach (var (name, shape, _) in Tensors(spec))
        {
            if (!checkpoint.Contains(name))
            {
                if (name.EndsWith(".weight", StringComparison.Ordinal) && name.Contains(".experts.", StringComparison.Ordinal)) continue; // checked per expert below
                throw new CheckpointException($"{checkpoint.Directory}: tensor '{name}' of the model is missing from the checkpoint");
            }

            var (entry, file) = checkpoint.Find(name);
            if (!entry.Shape.SequenceEqual(shape))
            {
                throw new CheckpointException($"{checkpoint.Directory}: tensor '{name}' has shape [{string.Join(", ", entry.Shape)}] in {file} but config.json declares [{string.Join(", ", shape)}]");
            }
        }

        return Create(accelerator, spec, precision, (weight, offset, name, _) =>
        {
            var values = checkpoint.ReadFloats(name);
            if (roundToBf16 && !name.Contains("norm", StringComparison.Ordinal) && !name.Contains("mlp.gate.", StringComparison.Ordinal))
            {
                for (int i = 0; i < values.Length; i++) values[i] = BitConverter.Int32BitsToSingle(DeviceWeight.ToBf16(values[i]) << 16);
            }

            weight.CopyFrom(offset, values);
        });
    }

    /// <summary>
    /// A model of <paramref name="spec"/>'s shapes with random weights drawn on the device (uniform, variance 1/fan-in; norms
    /// 1 ± 0.1; the selection bias ±0.05), for benchmarks and tests that need no checkpoint: a 16-billion-parameter model is
    /// ready in seconds.
    /// </summary>
    public static DeviceModel Random(Accelerator accelerator, ModelSpec spec, EnginePrecision precision, int seed)
    {
        var fill = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ushort>, int, long, uint, float, float>(EngineKernels.FillRandom);
        return Create(accelerator, spec, precision, (weight, offset, name, shape) =>
        {
            long count = shape.Aggregate(1L, (a, b) => a * b);
            bool norm = name.EndsWith("layernorm.weight", StringComparison.Ordinal) || name.EndsWith("norm.weight", StringComparison.Ordinal);
            float center = norm ? 1f : 0f;
            float scale = norm ? 0.1f : name.EndsWith("e_score_correction_bias", StringComparison.Ordinal) ? 0.05f : 1f / MathF.Sqrt(shape[^1]);
            uint key = (uint)HashCode.Combine(seed, name);
            for (long done = 0; done < count; done += int.MaxValue / 2)
            {
                int chunk = (int)Math.Min(count - done, int.MaxValue / 2);
                fill(chunk, weight.F32, weight.Bf16, weight.Bf16Flag, offset + done, key, scale, center);
            }
        });
    }

    /// <summary>Every tensor the engine reads: name, shape, and whether it stays FP32 (norms, router). Experts are listed one by one.</summary>
    internal static IEnumerable<(string Name, long[] Shape, bool Fp32)> Tensors(ModelSpec spec)
    {
        var a = spec.Attention;
        long d = spec.HiddenSize, h = a.Heads;
        yield return ("model.embed_tokens.weight", [spec.VocabularySize, d], false);
        for (int layer = 0; layer < spec.Layers; layer++)
        {
            string p = $"model.layers.{layer}.";
            yield return (p + "input_layernorm.weight", [d], true);
            if (a.QueryLoraRank > 0)
            {
                yield return (p + "self_attn.q_a_proj.weight", [a.QueryLoraRank, d], false);
                yield return (p + "self_attn.q_a_layernorm.weight", [a.QueryLoraRank], true);
                yield return (p + "self_attn.q_b_proj.weight", [h * a.QkHeadDim, a.QueryLoraRank], false);
            }
            else
            {
                yield return (p + "self_attn.q_proj.weight", [h * a.QkHeadDim, d], false);
            }

            yield return (p + "self_attn.kv_a_proj_with_mqa.weight", [a.CacheWidth, d], false);
            yield return (p + "self_attn.kv_a_layernorm.weight", [a.KeyValueLoraRank], true);
            yield return (p + "self_attn.kv_b_proj.weight", [h * (a.QkNopeHeadDim + a.ValueHeadDim), a.KeyValueLoraRank], false);
            yield return (p + "self_attn.o_proj.weight", [d, h * a.ValueHeadDim], false);
            yield return (p + "post_attention_layernorm.weight", [d], true);
            if (spec.IsMoeLayer(layer) && spec.Moe is { } moe)
            {
                yield return (p + "mlp.gate.weight", [moe.RoutedExperts, d], true);
                if (moe.HasSelectionBias) yield return (p + "mlp.gate.e_score_correction_bias", [moe.RoutedExperts], true);
                for (int e = 0; e < moe.RoutedExperts; e++)
                {
                    yield return (p + $"mlp.experts.{e}.gate_proj.weight", [moe.ExpertIntermediateSize, d], false);
                    yield return (p + $"mlp.experts.{e}.up_proj.weight", [moe.ExpertIntermediateSize, d], false);
                    yield return (p + $"mlp.experts.{e}.down_proj.weight", [d, moe.ExpertIntermediateSize], false);
                }

                if (moe.SharedExperts > 0)
                {
                    long width = (long)moe.SharedExperts * moe.ExpertIntermediateSize;
                    yield return (p + "mlp.shared_experts.gate_proj.weight", [width, d], false);
                    yield return (p + "mlp.shared_experts.up_proj.weight", [width, d], false);
                    yield return (p + "mlp.shared_experts.down_proj.weight", [d, width], false);
                }
            }
            else
            {
                yield return (p + "mlp.gate_proj.weight", [spec.DenseIntermediateSize, d], false);
                yield return (p + "mlp.up_proj.weight", [spec.DenseIntermediateSize, d], false);
                yield return (p + "mlp.down_proj.weight", [d, spec.DenseIntermediateSize], false);
            }
        }

        yield return ("model.norm.weight", [d], true);
        if (!spec.TieEmbeddings) yield return ("lm_head.weight", [spec.VocabularySize, d], false);
    }

    /// <summary>
    /// Allocates every weight and has <paramref name="fill"/> write each tensor (target, element offset, name, shape): a
    /// stacked expert weight is filled one expert at a time.
    /// </summary>
    private static DeviceModel Create(Accelerator accelerator, ModelSpec spec, EnginePrecision precision, Action<DeviceWeight, long, string, long[]> fill)
    {
        long needed = WeightBytes(spec, precision);
        if (needed > accelerator.MemorySize)
        {
            throw new InsufficientDeviceMemoryException($"the model's weights need {needed / (double)(1L << 30):F1} GiB in {precision}; the device ({accelerator.Name}) has {accelerator.MemorySize / (double)(1L << 30):F1} GiB");
        }

        var empty = new EmptyViews(accelerator);
        var owned = new List<IDisposable> { empty };
        try
        {
            DeviceWeight Weight(string name, long[] shape, bool fp32 = false)
            {
                var weight = DeviceWeight.Allocate(accelerator, empty, shape, fp32 ? EnginePrecision.Float32 : precision);
                owned.Add(weight);
                fill(weight, 0, name, shape);
                return weight;
            }

            DeviceWeight Stacked(string prefix, int experts, string projection, long[] shape)
            {
                long each = shape.Aggregate(1L, (a, b) => a * b);
                var weight = DeviceWeight.Allocate(accelerator, empty, [experts, .. shape], precision);
                owned.Add(weight);
                for (int e = 0; e < experts; e++) fill(weight, e * each, $"{prefix}experts.{e}.{projection}.weight", shape);
                return weight;
            }

            var a = spec.Attention;
            long d = spec.HiddenSize, h = a.Heads;
            var embedding = Weight("model.embed_tokens.weight", [spec.VocabularySize, d]);
            var layers = new List<LayerWeights>();
            for (int layer = 0; layer < spec.Layers; layer++)
            {
                string p = $"model.layers.{layer}.";
                (DeviceWeight, DeviceWeight, DeviceWeight)? mlp = null, experts = null;
                DeviceWeight? router = null, bias = null;
                if (spec.IsMoeLayer(layer) && spec.Moe is { } moe)
                {
                    router = Weight(p + "mlp.gate.weight", [moe.RoutedExperts, d], fp32: true);
                    if (moe.HasSelectionBias) bias = Weight(p + "mlp.gate.e_score_correction_bias", [moe.RoutedExperts], fp32: true);
                    long width = moe.ExpertIntermediateSize;
                    experts = (Stacked(p + "mlp.", moe.RoutedExperts, "gate_proj", [width, d]), Stacked(p + "mlp.", moe.RoutedExperts, "up_proj", [width, d]),
                        Stacked(p + "mlp.", moe.RoutedExperts, "down_proj", [d, width]));
                    if (moe.SharedExperts > 0)
                    {
                        long shared = moe.SharedExperts * width;
                        mlp = (Weight(p + "mlp.shared_experts.gate_proj.weight", [shared, d]), Weight(p + "mlp.shared_experts.up_proj.weight", [shared, d]),
                            Weight(p + "mlp.shared_experts.down_proj.weight", [d, shared]));
                    }
                }
                else
                {
                    long width = spec.DenseIntermediateSize;
                    mlp = (Weight(p + "mlp.gate_proj.weight", [width, d]), Weight(p + "mlp.up_proj.weight", [width, d]), Weight(p + "mlp.down_proj.weight", [d, width]));
                }

                bool compressed = a.QueryLoraRank > 0;
                layers.Add(new LayerWeights
                {
                    InputNorm = Weight(p + "input_layernorm.weight", [d], fp32: true),
                    QueryA = compressed ? Weight(p + "self_attn.q_a_proj.weight", [a.QueryLoraRank, d]) : null,
                    QueryNorm = compressed ? Weight(p + "self_attn.q_a_layernorm.weight", [a.QueryLoraRank], fp32: true) : null,
                    QueryB = compressed ? Weight(p + "self_attn.q_b_proj.weight", [h * a.QkHeadDim, a.QueryLoraRank]) : null,
                    Query = compressed ? null : Weight(p + "self_attn.q_proj.weight", [h * a.QkHeadDim, d]),
                    KeyValueA = Weight(p + "self_attn.kv_a_proj_with_mqa.weight", [a.CacheWidth, d]),
                    KeyValueNorm = Weight(p + "self_attn.kv_a_layernorm.weight", [a.KeyValueLoraRank], fp32: true),
                    KeyValueB = Weight(p + "self_attn.kv_b_proj.weight", [h * (a.QkNopeHeadDim + a.ValueHeadDim), a.KeyValueLoraRank]),
                    Output = Weight(p + "self_attn.o_proj.weight", [d, h * a.ValueHeadDim]),
                    PostNorm = Weight(p + "post_attention_layernorm.weight", [d], fp32: true),
                    Mlp = mlp,
                    Router = router,
                    RouterBias = bias,
                    Experts = experts,
                });
            }

            var norm = Weight("model.norm.weight", [d], fp32: true);
            var head = spec.TieEmbeddings ? embedding : Weight("lm_head.weight", [spec.VocabularySize, d]);
            return new DeviceModel(spec, precision, empty, embedding, layers, norm, head);
        }
        catch
        {
            foreach (var item in owned) item.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var layer in _layers) layer.Dispose();
        Embedding.Dispose();
        Norm.Dispose();
        if (!ReferenceEquals(Head, Embedding)) Head.Dispose();
        Empty.Dispose();
    }
}

/// <summary>The model (or its cache) needs more device memory than the device has; nothing was left allocated.</summary>
public sealed class InsufficientDeviceMemoryException(string message) : Exception(message);
