using ILGPU;
using ILGPU.Runtime;
using ModelCompiler.Gpu;
using ModelCompiler.Planning;

namespace ModelCompiler.Inference;

/// <summary>One sequence's part of a step: the tokens it feeds, from position <paramref name="Start"/> on, in cache slot <paramref name="Slot"/>.</summary>
/// <param name="Slot">The sequence's slot in the <see cref="PagedLatentCache"/>.</param>
/// <param name="Start">Position of the first token.</param>
/// <param name="Tokens">Token ids: a prompt chunk (prefill) or the last generated token (decode).</param>
public sealed record StepInput(int Slot, int Start, IReadOnlyList<int> Tokens);

/// <summary>Sizes an engine is built for.</summary>
/// <param name="MaxSequences">Sequences decoded at once (cache slots).</param>
/// <param name="MaxLength">Longest sequence, prompt included.</param>
/// <param name="MaxTokensPerStep">Tokens one step feeds in all (prompt chunks are cut to fit).</param>
/// <param name="CachePages">Pages of the latent cache per layer; by default enough for every slot at its longest.</param>
public sealed record EngineOptions(int MaxSequences = 8, int MaxLength = 512, int MaxTokensPerStep = 512, int? CachePages = null);

/// <summary>
/// A declared model's forward pass on the device, with no tensor library: a step feeds any sequences' tokens at once (prompt
/// chunks and single decode tokens alike: continuous batching), writes their latents into the <see cref="PagedLatentCache"/>,
/// attends through MLA's absorbed form over each sequence's own pages, and returns the logits of each sequence's last token.
/// GEMMs go to cuBLAS on CUDA (FP32, or bf16 inputs with FP32 accumulation) and to the general kernel elsewhere; everything
/// else runs in <see cref="EngineKernels"/>.
/// </summary>
public sealed class InferenceEngine : IDisposable
{
    private readonly GpuDevice _device;
    private readonly DeviceModel _model;
    private readonly ModelSpec _spec;
    private readonly CuBlas? _blas;
    private readonly Launchers _k;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _cos, _sin;
    private readonly float _scale;
    private readonly List<IDisposable> _scratch = [];
    private readonly Dictionary<string, MemoryBuffer1D<float, Stride1D.Dense>> _floats = new(StringComparer.Ordinal);
    private readonly Dictionary<string, MemoryBuffer1D<int, Stride1D.Dense>> _ints = new(StringComparer.Ordinal);
    private readonly Dictionary<string, MemoryBuffer1D<ushort, Stride1D.Dense>> _halves = new(StringComparer.Ordinal);
    private readonly AcceleratorStream _stream;
    private readonly bool _ownStream;
    private readonly Dictionary<(int Tokens, int Rows, int Context), (CudaGraph Graph, int Generation)> _graphs = new();
    private readonly HashSet<(int Tokens, int Rows, int Context)> _seen = new();
    private MemoryBuffer1D<ushort, Stride1D.Dense>? _bf16Input;
    private int _generation; // bumped whenever a scratch buffer is reallocated: graphs captured before it read stale addresses

    /// <summary>Builds the engine for <paramref name="model"/> on <paramref name="device"/>, with a cache for <paramref name="options"/>.</summary>
    public InferenceEngine(GpuDevice device, DeviceModel model, EngineOptions? options = null)
    {
        _device = device;
        _model = model;
        _spec = model.Spec;
        Options = options ?? new EngineOptions();
        if (Options.MaxSequences < 1 || Options.MaxLength < 1 || Options.MaxTokensPerStep < Options.MaxSequences)
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"an engine needs at least one sequence and one token, and a step of at least one token per sequence: {Options}");
        }

        var a = _spec.Attention;
        int pages = Options.CachePages ?? Options.MaxSequences * PagedLatentCache.PagesFor(Options.MaxLength);
        Cache = new PagedLatentCache(device.Accelerator, _spec, model.Precision, Options.MaxSequences, Options.MaxLength, pages);
        // On CUDA the engine works on a stream of its own: the legacy default stream cannot be captured into a graph.
        _ownStream = device.Backend == GpuBackend.Cuda;
        _stream = _ownStream ? device.Accelerator.CreateStream() : device.Accelerator.DefaultStream;
        _blas = device.Backend == GpuBackend.Cuda ? new CuBlas(_stream) : null;
        _k = new Launchers(device, _stream);
        UseGraphs = device.Backend == GpuBackend.Cuda;
        _scale = (float)RopeMath.SoftmaxScale(_spec);

        // cos/sin of every position the engine can reach, computed in double (position × frequency needs more than 24 bits).
        var frequencies = RopeMath.Frequencies(a.QkRopeHeadDim, _spec.RopeTheta, _spec.Yarn);
        var cos = new float[(long)Options.MaxLength * frequencies.Length];
        var sin = new float[cos.Length];
        for (int p = 0; p < Options.MaxLength; p++)
        {
            for (int i = 0; i < frequencies.Length; i++)
            {
                cos[(p * frequencies.Length) + i] = (float)Math.Cos(p * frequencies[i]);
                sin[(p * frequencies.Length) + i] = (float)Math.Sin(p * frequencies[i]);
            }
        }

        _cos = device.Accelerator.Allocate1D(cos);
        _sin = device.Accelerator.Allocate1D(sin);
    }

    /// <summary>The sizes the engine was built for.</summary>
    public EngineOptions Options { get; }

    /// <summary>The latent cache (its slots and pages are the scheduler's to take and release).</summary>
    public PagedLatentCache Cache { get; }

    /// <summary>The model.</summary>
    public ModelSpec Spec => _spec;

    /// <summary>The device.</summary>
    public GpuDevice Device => _device;

    /// <summary>
    /// Whether a step is replayed from a CUDA graph once its shape (tokens, rows, context bucket) has run once eagerly: the
    /// ~700 launches of a decode step cost one. On by default on CUDA; a capture that fails turns it off (see
    /// <see cref="GraphFailure"/>) and the engine goes on eagerly.
    /// </summary>
    public bool UseGraphs { get; set; }

    /// <summary>Why graphs were turned off, when a capture failed.</summary>
    public string? GraphFailure { get; private set; }

    /// <summary>Graphs captured so far.</summary>
    public int GraphCount => _graphs.Count;

    /// <summary>When set, every launch waits for the device and its time is added to <see cref="Profile"/>.</summary>
    public bool Profiling
    {
        get => _k.Profiling;
        set => _k.Profiling = value;
    }

    /// <summary>Seconds and launches per kernel while <see cref="Profiling"/>, since the last <see cref="ResetProfile"/>.</summary>
    public IReadOnlyDictionary<string, (double Seconds, int Launches)> Profile => _k.Profile;

    /// <summary>Forgets the profile so far.</summary>
    public void ResetProfile() => _k.ResetProfile();

    /// <summary>
    /// Runs one step and returns the logits of each input's last token, [inputs.Count, vocabulary] (of every token fed,
    /// [tokens, vocabulary], when <paramref name="allTokens"/>), on the device, valid until the next step. Each input's slot
    /// must already have pages for its positions (<see cref="PagedLatentCache.Grow"/>).
    /// </summary>
    /// <exception cref="ArgumentException">An empty input, a step over <see cref="EngineOptions.MaxTokensPerStep"/>, a token outside the vocabulary or a position beyond the slot's pages.</exception>
    public ArrayView<float> Forward(IReadOnlyList<StepInput> inputs, bool allTokens = false)
    {
        if (inputs.Count == 0 || inputs.Any(i => i.Tokens.Count == 0)) throw new ArgumentException("a step needs at least one token of at least one sequence", nameof(inputs));
        int tokens = inputs.Sum(i => i.Tokens.Count);
        if (tokens > Options.MaxTokensPerStep) throw new ArgumentException($"a step of {tokens} tokens exceeds the engine's {Options.MaxTokensPerStep}", nameof(inputs));
        var ids = new int[tokens];
        var sequences = new int[tokens];
        var positions = new int[tokens];
        var last = new int[allTokens ? tokens : inputs.Count];
        int t = 0;
        for (int s = 0; s < inputs.Count; s++)
        {
            var input = inputs[s];
            if (input.Start < 0 || input.Start + input.Tokens.Count > Options.MaxLength)
            {
                throw new ArgumentException($"positions {input.Start}–{input.Start + input.Tokens.Count - 1} lie outside the engine's {Options.MaxLength}", nameof(inputs));
            }

            for (int j = 0; j < input.Tokens.Count; j++)
            {
                int id = input.Tokens[j];
                if (id < 0 || id >= _spec.VocabularySize) throw new ArgumentException($"token id {id} lies outside the vocabulary [0, {_spec.VocabularySize})", nameof(inputs));
                ids[t] = id;
                sequences[t] = input.Slot;
                positions[t] = input.Start + j;
                if (allTokens) last[t] = t;
                t++;
            }

            if (!allTokens) last[s] = t - 1;
        }

        // With graphs, the scores' width is bucketed (positions past a token's own score −∞), so that a decode step's graph
        // serves 128 positions in a row.
        int context = positions.Max() + 1;
        if (UseGraphs) context = Math.Min(Options.MaxLength, (context + 127) / 128 * 128);
        int rows = last.Length;
        var ints = Ints("ids", tokens);
        var sequenceView = Ints("sequences", tokens);
        var positionView = Ints("positions", tokens);
        var lastView = Ints("last", rows);
        _stream.Synchronize(); // the last step's work may still read these
        _k.Timed("step inputs to the device", () =>
        {
            Cache.Synchronise();
            ints.CopyFromCPU(ids);
            sequenceView.CopyFromCPU(sequences);
            positionView.CopyFromCPU(positions);
            lastView.CopyFromCPU(last);
        });

        var key = (tokens, rows, context);
        if (UseGraphs && !Profiling && _graphs.TryGetValue(key, out var captured) && captured.Generation == _generation)
        {
            captured.Graph.Launch(_stream);
            return Floats("logits", (long)rows * _spec.VocabularySize);
        }

        if (UseGraphs && !Profiling && _seen.Contains(key))
        {
            // Seen once already: every kernel is loaded and every scratch buffer sized for this shape, so nothing allocates.
            int generation = _generation;
            try
            {
                var graph = CudaGraph.Capture(_stream, () => Layers(tokens, rows, context));
                if (_generation != generation) throw new InvalidOperationException("a scratch buffer was reallocated while capturing");
                if (_graphs.Remove(key, out var stale)) stale.Graph.Dispose();
                _graphs[key] = (graph, _generation);
                graph.Launch(_stream);
                return Floats("logits", (long)rows * _spec.VocabularySize);
            }
            catch (InvalidOperationException e)
            {
                GraphFailure = e.Message;
                UseGraphs = false;
            }
        }

        _seen.Add(key);
        return Layers(tokens, rows, context);
    }

    /// <summary>The device work of a step whose inputs are on the device: every layer, the final norm and the head.</summary>
    private ArrayView<float> Layers(int tokens, int rows, int context)
    {
        var ints = Ints("ids", tokens);
        var sequenceView = Ints("sequences", tokens);
        var positionView = Ints("positions", tokens);
        var lastView = Ints("last", rows);
        var a = _spec.Attention;
        int d = _spec.HiddenSize, h = a.Heads, qk = a.QkHeadDim, width = a.CacheWidth;
        var dims = new AttentionDims(h, a.KeyValueLoraRank, a.QkRopeHeadDim, qk, Cache.PagesPerSequence, context, Cache.Precision == EnginePrecision.Bf16 ? 1 : 0, _scale);
        var x = Floats("x", (long)tokens * d);
        var normed = Floats("normed", (long)tokens * d);
        var delta = Floats("delta", (long)tokens * d);
        _k.Embed(ints, _model.Embedding, x, d, tokens);
        for (int layer = 0; layer < _spec.Layers; layer++)
        {
            var w = _model.Layers[layer];
            _k.RmsNorm(x, w.InputNorm, normed, tokens, d, d, d, (float)_spec.RmsNormEpsilon);

            // Queries [T, h, nope + rope], RoPE on the rope part.
            var q = Floats("q", (long)tokens * h * qk);
            if (w.Query is { } query)
            {
                Linear(normed, query, q, tokens);
            }
            else
            {
                var qa = Floats("qa", (long)tokens * a.QueryLoraRank);
                Linear(normed, w.QueryA!, qa, tokens);
                _k.RmsNorm(qa, w.QueryNorm!, qa, tokens, a.QueryLoraRank, a.QueryLoraRank, a.QueryLoraRank, (float)_spec.RmsNormEpsilon);
                Linear(qa, w.QueryB!, q, tokens);
            }

            _k.Rope(q, positionView, _cos.View, _sin.View, tokens, h, qk, a.QkNopeHeadDim, a.QkRopeHeadDim / 2);

            // The compressed KV: c (normalised in place) and k_pe (rotated in place), written into the sequences' pages.
            var kv = Floats("kv", (long)tokens * width);
            Linear(normed, w.KeyValueA, kv, tokens);
            _k.RmsNorm(kv, w.KeyValueNorm, kv, tokens, a.KeyValueLoraRank, width, width, (float)_spec.RmsNormEpsilon);
            _k.Rope(kv, positionView, _cos.View, _sin.View, tokens, 1, width, a.KeyValueLoraRank, a.QkRopeHeadDim / 2);
            var c32 = Cache.F32(layer, _model.Empty);
            var c16 = Cache.Bf16(layer, _model.Empty);
            _k.CacheWrite(kv, sequenceView, positionView, Cache.Tables, c32, c16, dims, tokens);

            // Absorbed attention over each token's own sequence, up to its position.
            var absorbed = Floats("absorbed", (long)tokens * h * a.KeyValueLoraRank);
            AbsorbQuery(q, w.KeyValueB, absorbed, tokens);
            var scores = Floats("scores", (long)tokens * h * context);
            _k.Scores(absorbed, q, sequenceView, positionView, Cache.Tables, c32, c16, scores, dims, tokens);
            _k.Softmax(scores, tokens * h, context);
            var attended = Floats("attended", (long)tokens * h * a.KeyValueLoraRank);
            _k.AttendLatent(scores, sequenceView, positionView, Cache.Tables, c32, c16, attended, dims, tokens);
            var values = Floats("values", (long)tokens * h * a.ValueHeadDim);
            ApplyValue(attended, w.KeyValueB, values, tokens);
            Linear(values, w.Output, delta, tokens);
            _k.Add(x, delta, (long)tokens * d);

            // The FFN: dense SwiGLU, or shared experts plus the routed experts' weighted sum.
            _k.RmsNorm(x, w.PostNorm, normed, tokens, d, d, d, (float)_spec.RmsNormEpsilon);
            if (w.Mlp is { } mlp)
            {
                long width2 = mlp.Gate.Shape[0];
                var gate = Floats("gate", tokens * width2);
                var up = Floats("up", tokens * width2);
                Linear(normed, mlp.Gate, gate, tokens);
                Linear(normed, mlp.Up, up, tokens);
                _k.SiluMul(gate, up, gate, tokens * width2);
                Linear(gate, mlp.Down, delta, tokens);
            }
            else
            {
                delta.MemSetToZero(_stream);
            }

            if (w.Experts is { } experts && _spec.Moe is { } moe)
            {
                var logits = Floats("router", (long)tokens * moe.RoutedExperts);
                Linear(normed, w.Router!, logits, tokens);
                var selection = Floats("selection", (long)tokens * moe.RoutedExperts);
                var chosen = Ints("experts", (long)tokens * moe.ActivatedExperts);
                var weights = Floats("weights", (long)tokens * moe.ActivatedExperts);
                _k.Route(logits, w.RouterBias, _model.Empty, selection, chosen, weights, tokens, moe);
                var hidden = Floats("expertHidden", (long)tokens * moe.ActivatedExperts * moe.ExpertIntermediateSize);
                _k.ExpertGateUp(normed, chosen, experts.Gate, experts.Up, hidden, tokens, moe.ActivatedExperts, moe.ExpertIntermediateSize, d);
                var pairOutputs = Floats("expertOutputs", (long)tokens * moe.ActivatedExperts * d);
                _k.ExpertDownCombine(hidden, chosen, weights, experts.Down, delta, pairOutputs, tokens, moe.ActivatedExperts, moe.ExpertIntermediateSize, d);
            }

            _k.Add(x, delta, (long)tokens * d);
        }

        // The last token of each input: final norm, head.
        var tail = Floats("tail", (long)rows * d);
        _k.Gather(x, lastView, tail, rows, d);
        var tailNormed = Floats("tailNormed", (long)rows * d);
        _k.RmsNorm(tail, _model.Norm, tailNormed, rows, d, d, d, (float)_spec.RmsNormEpsilon);
        var output = Floats("logits", (long)rows * _spec.VocabularySize);
        Linear(tailNormed, _model.Head, output, rows);
        return output;
    }

    /// <summary>Chooses one token per row of <paramref name="logits"/> on the device: greedy when <paramref name="temperature"/> is 0.</summary>
    public int[] Choose(ArrayView<float> logits, int rows, float temperature = 0, float topP = 1, int[]? seeds = null, int step = 0)
    {
        var chosen = Ints("chosen", rows);
        if (temperature <= 0)
        {
            _k.Argmax(logits, chosen, rows, _spec.VocabularySize);
        }
        else
        {
            var seedView = Ints("seeds", rows);
            _stream.Synchronize();
            seedView.CopyFromCPU(seeds ?? new int[rows]);
            _k.Sample(logits, chosen, seedView, rows, _spec.VocabularySize, temperature, topP, step);
        }

        var result = new int[rows];
        _stream.Synchronize();
        chosen.CopyToCPU(_stream, result);
        _stream.Synchronize();
        return result;
    }

    /// <summary>Copies <paramref name="rows"/> rows of logits to the host (for checks and for callers that sample themselves).</summary>
    public float[] Download(ArrayView<float> logits, int rows)
    {
        var result = new float[(long)rows * _spec.VocabularySize];
        _stream.Synchronize();
        logits.SubView(0, result.Length).CopyToCPU(_stream, result);
        _stream.Synchronize();
        return result;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var buffer in _floats.Values) buffer.Dispose();
        foreach (var buffer in _ints.Values) buffer.Dispose();
        foreach (var buffer in _halves.Values) buffer.Dispose();
        foreach (var (graph, _) in _graphs.Values) graph.Dispose();
        foreach (var item in _scratch) item.Dispose();
        _bf16Input?.Dispose();
        _cos.Dispose();
        _sin.Dispose();
        _blas?.Dispose();
        Cache.Dispose();
        if (_ownStream) _stream.Dispose();
    }

    /// <summary>y[m, n] = x[m, k] · wᵀ: cuBLAS on CUDA (bf16 weights take bf16 inputs), the general kernel elsewhere.</summary>
    private void Linear(ArrayView<float> x, DeviceWeight w, ArrayView<float> y, int m)
    {
        int n = checked((int)w.Shape[0]), k = checked((int)w.Shape[1]);
        if (_blas is null)
        {
            _k.Linear(x, w, y, m, n, k);
            return;
        }

        if (!w.IsBf16)
        {
            _k.Timed("cuBLAS GEMM", () => _blas.Gemm(x.SubView(0, (long)m * k), w.F32, y.SubView(0, (long)m * n), m, n, k));
            return;
        }

        long length = (long)m * k;
        if (_bf16Input is null || _bf16Input.Length < length)
        {
            _bf16Input?.Dispose();
            _bf16Input = _device.Accelerator.Allocate1D<ushort>(Math.Max(length, (long)Options.MaxTokensPerStep * _spec.HiddenSize));
            _generation++;
        }

        _k.ToBf16(x, _bf16Input.View, length);
        var input = _bf16Input.View.SubView(0, length);
        _k.Timed("cuBLAS GEMM", () => _blas.GemmBf16(input, w.Bf16, y.SubView(0, (long)m * n), m, n, k));
    }

    /// <summary>
    /// The absorbed queries q̃[t, h] = q_nope[t, h] · W_UK[h] ([nope, d_c], kv_b_proj's key rows): one strided batched GEMM over
    /// the heads on CUDA, the general kernel elsewhere.
    /// </summary>
    private void AbsorbQuery(ArrayView<float> q, DeviceWeight kvB, ArrayView<float> absorbed, int tokens)
    {
        var a = _spec.Attention;
        int h = a.Heads, qk = a.QkHeadDim, latent = a.KeyValueLoraRank, rowsPerHead = a.QkNopeHeadDim + a.ValueHeadDim;
        if (_blas is null)
        {
            _k.AbsorbQuery(q, kvB, absorbed, tokens, h, a.QkNopeHeadDim, qk, a.ValueHeadDim, latent);
            return;
        }

        var input = Operand(q, (long)tokens * h * qk, kvB.IsBf16);
        _k.Timed("cuBLAS batched GEMM", () => _blas.GemmStridedBatched(kvB.IsBf16, input, h * qk, qk, Address(kvB), latent, (long)rowsPerHead * latent, transposeB: false,
            absorbed.LoadEffectiveAddressAsPtr(), h * latent, latent, tokens, latent, a.QkNopeHeadDim, h));
    }

    /// <summary>The heads' values o[t, h] = ō[t, h] · W_UV[h]ᵀ (W_UV [v, d_c], kv_b_proj's value rows): one strided batched GEMM on CUDA.</summary>
    private void ApplyValue(ArrayView<float> attended, DeviceWeight kvB, ArrayView<float> values, int tokens)
    {
        var a = _spec.Attention;
        int h = a.Heads, latent = a.KeyValueLoraRank, v = a.ValueHeadDim, rowsPerHead = a.QkNopeHeadDim + a.ValueHeadDim;
        if (_blas is null)
        {
            _k.ApplyValue(attended, kvB, values, tokens, h, a.QkNopeHeadDim, v, latent);
            return;
        }

        var input = Operand(attended, (long)tokens * h * latent, kvB.IsBf16);
        IntPtr valueRows = Address(kvB) + (nint)((long)a.QkNopeHeadDim * latent * (kvB.IsBf16 ? 2 : 4));
        _k.Timed("cuBLAS batched GEMM", () => _blas.GemmStridedBatched(kvB.IsBf16, input, h * latent, latent, valueRows, latent, (long)rowsPerHead * latent, transposeB: true,
            values.LoadEffectiveAddressAsPtr(), h * v, v, tokens, v, latent, h));
    }

    /// <summary>The address of <paramref name="x"/> as a GEMM operand beside a weight: itself for FP32, its bf16 copy for a bf16 weight.</summary>
    private IntPtr Operand(ArrayView<float> x, long length, bool bf16)
    {
        if (!bf16) return x.LoadEffectiveAddressAsPtr();
        var copy = Halves("operand", length);
        _k.ToBf16(x, copy, length);
        return copy.LoadEffectiveAddressAsPtr();
    }

    private static IntPtr Address(DeviceWeight w) => w.IsBf16 ? w.Bf16.LoadEffectiveAddressAsPtr() : w.F32.LoadEffectiveAddressAsPtr();

    private ArrayView<ushort> Halves(string name, long length)
    {
        if (!_halves.TryGetValue(name, out var buffer) || buffer.Length < length)
        {
            buffer?.Dispose();
            buffer = _device.Accelerator.Allocate1D<ushort>(Math.Max(length, 1));
            _halves[name] = buffer;
            _generation++;
        }

        return buffer.View.SubView(0, length);
    }

    /// <summary>A scratch buffer named <paramref name="name"/> of at least <paramref name="length"/> floats, kept across steps.</summary>
    private ArrayView<float> Floats(string name, long length)
    {
        if (!_floats.TryGetValue(name, out var buffer) || buffer.Length < length)
        {
            buffer?.Dispose();
            buffer = _device.Accelerator.Allocate1D<float>(Math.Max(length, 1));
            _floats[name] = buffer;
            _generation++;
        }

        return buffer.View.SubView(0, length);
    }

    private ArrayView<int> Ints(string name, long length)
    {
        if (!_ints.TryGetValue(name, out var buffer) || buffer.Length < length)
        {
            buffer?.Dispose();
            buffer = _device.Accelerator.Allocate1D<int>(Math.Max(length, 1));
            _ints[name] = buffer;
            _generation++;
        }

        return buffer.View.SubView(0, length);
    }
}
