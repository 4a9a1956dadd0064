using ModelCompiler.Planning;
using ModelCompiler.Torch.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompiler.Torch;

/// <summary>
/// A DeepSeek-style causal language model composed from the runtime layers for a <see cref="ModelSpec"/>: embedding,
/// decoder blocks (dense then MoE), final norm and head, plus the MTP modules when requested. Every parameter carries its
/// Hugging Face name (<c>model.embed_tokens.weight</c>, <c>model.layers.3.mlp.experts.7.up_proj.weight</c>,
/// <c>lm_head.weight</c>, …), so a checkpoint's state dict maps one to one. The generated <c>{Model}.Module</c> derives from it.
/// </summary>
public class DeepSeekCausalLM : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "model")]
    private readonly Backbone _model;
    [ComponentName(Name = "lm_head")]
    private readonly Linear? _head;

    /// <summary>Builds the model with freshly initialised weights (N(0, 0.006²) for matrices as in V3, ones for norms).</summary>
    /// <param name="spec">The declaration.</param>
    /// <param name="includeMtp">Whether to build the MTP modules (training); inference can leave them out.</param>
    /// <param name="seed">Seed of the initial weights; a private generator, so other threads' use of the global one cannot change them.</param>
    public DeepSeekCausalLM(ModelSpec spec, bool includeMtp = false, long seed = 0)
        : base(nameof(DeepSeekCausalLM))
    {
        var plan = ModelPlanner.PlanOrThrow(spec);
        Spec = spec;
        Plan = plan;
        Rope = new RotaryEmbedding(spec.Attention.QkRopeHeadDim, spec.RopeTheta, spec.Yarn);
        Precision = new ComputePrecision(spec.Precision.Compute, spec.Precision.ActivationTile, spec.Precision.WeightBlock);
        _model = new Backbone(spec, Rope, Precision, includeMtp ? spec.Mtp?.Depth ?? 0 : 0);
        if (!spec.TieEmbeddings) _head = nn.Linear(spec.HiddenSize, spec.VocabularySize, hasBias: false);
        RegisterComponents();

        using (no_grad())
        {
            var generator = new Generator((ulong)seed);
            foreach (var (name, parameter) in named_parameters())
            {
                // Tensor.normal_ honours the generator (TorchSharp 0.107's nn.init.normal_ ignores it).
                if (parameter.dim() == 2) parameter.normal_(0, 0.006, generator);
            }
        }
    }

    /// <summary>The declaration.</summary>
    public ModelSpec Spec { get; }

    /// <summary>Its plan.</summary>
    public ModelPlan Plan { get; }

    /// <summary>The format every layer computes its GEMM inputs in (the declaration's; settable, e.g. FP32 for inference).</summary>
    public ComputePrecision Precision { get; }

    /// <summary>The rotary embedding shared by every layer.</summary>
    public RotaryEmbedding Rope { get; }

    /// <summary>The decoder blocks, in order.</summary>
    public IReadOnlyList<DecoderLayer> Layers => _model.DecoderLayers;

    /// <summary>The MTP modules (empty unless built with them).</summary>
    public IReadOnlyList<MtpModule> MtpModules => _model.MtpModules;

    /// <summary>The MoE layers of the decoder layers, then of the MTP modules: the order of a training step's load table.</summary>
    public IEnumerable<MixtureOfExperts> MoeLayers => Layers.Concat(MtpModules).Select(l => l.Moe).OfType<MixtureOfExperts>();

    /// <summary>Logits [B, T, V] for token ids [B, T], naive attention from position 0.</summary>
    public override Tensor forward(Tensor inputIds) => Forward(inputIds, 0, AttentionMode.Naive, null);

    /// <summary>
    /// Logits [B, T, V] for <paramref name="inputIds"/> at positions <paramref name="start"/>…; with a
    /// <paramref name="cache"/> (absorbed mode) earlier positions are read from it and the new ones written to it.
    /// </summary>
    public Tensor Forward(Tensor inputIds, long start, AttentionMode mode, LatentKvCache? cache)
    {
        using var scope = NewDisposeScope();
        var hidden = Hidden(inputIds, start, mode, cache);
        return Logits(_model.Norm.call(hidden)).MoveToOuterDisposeScope();
    }

    /// <summary>The last block's output [B, T, d] (before the final norm).</summary>
    public Tensor Hidden(Tensor inputIds, long start, AttentionMode mode, LatentKvCache? cache)
    {
        using var scope = NewDisposeScope();
        var x = _model.Embedding.call(inputIds);
        for (int i = 0; i < _model.DecoderLayers.Count; i++) x = _model.DecoderLayers[i].Forward(x, start, mode, cache?[i]);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>The output head: logits for final-normalised hidden states.</summary>
    public Tensor Logits(Tensor normalisedHidden) =>
        _head is null ? nn.functional.linear(normalisedHidden, _model.Embedding.weight!) : _head.call(normalisedHidden);

    /// <summary>Token embeddings (shared with the MTP modules).</summary>
    public Tensor Embed(Tensor inputIds) => _model.Embedding.call(inputIds);

    /// <summary>Where the weights are (the CPU, or the GPU the model was moved to): the device its inputs must be on.</summary>
    public Device Device => _model.Embedding.weight!.device;

    /// <summary>The final RMSNorm.</summary>
    public Tensor FinalNorm(Tensor hidden) => _model.Norm.call(hidden);

    /// <summary>A latent KV cache sized for this model.</summary>
    public LatentKvCache CreateCache(long batch, long capacity, ScalarType dtype = ScalarType.Float32) =>
        new(Spec.Attention, Spec.Layers, batch, capacity, dtype);

    private sealed class Backbone : nn.Module<Tensor, Tensor>
    {
        [ComponentName(Name = "embed_tokens")]
        private readonly Embedding _embedding;
        [ComponentName(Name = "layers")]
        private readonly ModuleList<DecoderLayer> _layers;
        [ComponentName(Name = "norm")]
        private readonly RmsNorm _norm;

        public Backbone(ModelSpec spec, RotaryEmbedding rope, ComputePrecision precision, int mtpDepth)
            : base("model")
        {
            _embedding = nn.Embedding(spec.VocabularySize, spec.HiddenSize);
            DecoderLayers = Enumerable.Range(0, spec.Layers).Select(i => new DecoderLayer(spec, rope, spec.IsMoeLayer(i), precision)).ToList();
            MtpModules = Enumerable.Range(0, mtpDepth).Select(_ => new MtpModule(spec, rope, precision)).ToList();
            _layers = nn.ModuleList<DecoderLayer>([.. DecoderLayers, .. MtpModules]);
            _norm = new RmsNorm(spec.HiddenSize, spec.RmsNormEpsilon);
            RegisterComponents();
        }

        public Embedding Embedding => _embedding;

        public List<DecoderLayer> DecoderLayers { get; }

        public List<MtpModule> MtpModules { get; }

        public RmsNorm Norm => _norm;

        public override Tensor forward(Tensor input) => throw new NotSupportedException("Call DeepSeekCausalLM.Forward.");
    }
}
