using ModelCompiler.Planning;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompiler.Torch.Layers;

/// <summary>The routing of a batch of tokens: for each token its K experts and their gate weights.</summary>
/// <param name="Weights">Gate weights [tokens, K], already normalised (when declared) and scaled.</param>
/// <param name="Experts">Expert ids [tokens, K] (int64).</param>
/// <param name="Scores">The unbiased affinities of every routed expert [tokens, N_r] (FP32, differentiable): the balance losses' input.</param>
public sealed record Routing(Tensor Weights, Tensor Experts, Tensor Scores);

/// <summary>
/// DeepSeekMoE's router (deepseek-reference §2.2–2.3, as DeepSeek's official <c>Gate</c>): scores = sigmoid or softmax of
/// the logits (FP32); selection scores add the selection-only bias <c>e_score_correction_bias</c> when balancing is
/// auxiliary-loss-free; with groups, each group is scored by the sum of its top-2 selection scores (with the bias) or its
/// best score (without), the best GroupsPerToken groups are kept and the others masked with −∞; top-K experts are chosen
/// on the selection scores, and their weights are the unbiased scores, renormalised when declared, times the routed
/// scaling factor. Parameters: <c>weight</c> [N_r, d]; buffer <c>e_score_correction_bias</c> [N_r] (FP32, no gradient).
/// </summary>
public sealed class MoeGate : nn.Module<Tensor, Routing>
{
    private readonly MoeSpec _spec;
    [ComponentName(Name = "weight")]
    private readonly Parameter _weight;
    [ComponentName(Name = "e_score_correction_bias")]
    private readonly Tensor? _bias;

    /// <summary>Creates the router of a model of width <paramref name="hidden"/>.</summary>
    public MoeGate(long hidden, MoeSpec spec)
        : base(nameof(MoeGate))
    {
        _spec = spec;
        _weight = new Parameter(empty(spec.RoutedExperts, hidden));
        if (spec.HasSelectionBias)
        {
            _bias = zeros(spec.RoutedExperts, ScalarType.Float32);
        }

        RegisterComponents();
    }

    /// <summary>The selection-only bias, or null without auxiliary-loss-free balancing.</summary>
    public Tensor? SelectionBias => _bias;

    /// <inheritdoc/>
    public override Routing forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var m = _spec;
        long tokens = x.shape[0];
        var logits = nn.functional.linear(x.to(ScalarType.Float32), _weight.to(ScalarType.Float32));
        var scores = m.Scoring == ExpertScoring.Sigmoid ? logits.sigmoid() : logits.softmax(-1);
        var selection = _bias is null ? scores : scores.Plus(_bias);
        if (m.ExpertGroups > 1)
        {
            var grouped = selection.view(tokens, m.ExpertGroups, -1);
            var groupScores = _bias is null ? grouped.amax([-1L]) : grouped.topk(2, -1).values.sum(-1);
            var kept = groupScores.topk(m.GroupsPerToken, -1).indexes;
            var dropped = ones(tokens, m.ExpertGroups, ScalarType.Bool, x.device).scatter(1, kept, zeros(kept.shape, ScalarType.Bool, x.device));
            selection = grouped.masked_fill(dropped.unsqueeze(-1), KeptScalars.NegativeInfinity).flatten(1);
        }

        var experts = selection.topk(m.ActivatedExperts, -1).indexes;
        var weights = scores.gather(1, experts);
        if (m.NormalizeTopK) weights = weights / weights.sum(-1, keepdim: true);
        weights = weights.Times(m.RoutedScalingFactor);
        return new Routing(weights.to(x.dtype).MoveToOuterDisposeScope(), experts.MoveToOuterDisposeScope(), scores.MoveToOuterDisposeScope());
    }
}

/// <summary>
/// A DeepSeekMoE feed-forward layer: shared experts (one SwiGLU of width N_s × expert width) on every token plus, per token,
/// the gate-weighted sum of its K routed experts. Dispatch is grouped: the (token, expert) pairs are sorted by expert, the
/// token rows gathered once, each expert runs on its own contiguous slice, and the weighted outputs are scattered back with
/// one index_add. Parameters: <c>gate.*</c>, <c>experts.{i}.*</c>, <c>shared_experts.*</c>.
/// </summary>
public sealed class MixtureOfExperts : nn.Module<Tensor, Tensor>
{
    private readonly MoeSpec _spec;
    [ComponentName(Name = "gate")]
    private readonly MoeGate _gate;
    [ComponentName(Name = "experts")]
    private readonly ModuleList<SwiGlu> _experts;
    [ComponentName(Name = "shared_experts")]
    private readonly SwiGlu? _shared;

    /// <summary>Creates the layer; the experts' GEMM inputs are computed in <paramref name="precision"/>'s format (the router stays FP32).</summary>
    public MixtureOfExperts(long hidden, MoeSpec spec, ComputePrecision? precision = null)
        : base(nameof(MixtureOfExperts))
    {
        _spec = spec;
        _gate = new MoeGate(hidden, spec);
        _experts = nn.ModuleList(Enumerable.Range(0, spec.RoutedExperts).Select(_ => new SwiGlu(hidden, spec.ExpertIntermediateSize, precision)).ToArray());
        if (spec.SharedExperts > 0)
        {
            _shared = new SwiGlu(hidden, (long)spec.SharedExperts * spec.ExpertIntermediateSize, precision);
        }

        RegisterComponents();
    }

    /// <summary>The router.</summary>
    public MoeGate Gate => _gate;

    /// <summary>Seconds this thread has spent dispatching tokens (routing, sorting, gathering, scattering; not the experts' own compute).</summary>
    public static double DispatchSeconds => DispatchClock.Elapsed.TotalSeconds;

    [ThreadStatic]
    private static System.Diagnostics.Stopwatch? t_dispatch;

    private static System.Diagnostics.Stopwatch DispatchClock => t_dispatch ??= new System.Diagnostics.Stopwatch();

    /// <summary>Tokens routed to each expert by the last forward call (its load), for balancing and statistics; null before.</summary>
    public long[]? LastLoads { get; private set; }

    /// <summary>
    /// When set, each forward call keeps its routing (scores with their gradient, and the chosen experts) in
    /// <see cref="LastRouting"/> for the auxiliary balance losses; the caller disposes it (training only).
    /// </summary>
    public bool KeepRouting { get; set; }

    /// <summary>The routing of the last forward call when <see cref="KeepRouting"/> is set; owned by the caller, outside any dispose scope.</summary>
    public Routing? LastRouting { get; private set; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        DispatchClock.Start();
        var shape = input.shape;
        var x = input.view(-1, shape[^1]);
        var routing = _gate.call(x);
        long k = _spec.ActivatedExperts;

        var flatExperts = routing.Experts.flatten();
        if (UsesBatchedExperts(x.shape[0] * k))
        {
            var pairs = BatchedExperts(x, flatExperts, routing.Weights.flatten(), k);
            var counted = flatExperts.bincount(null, _spec.RoutedExperts).cpu().data<long>().ToArray();
            DispatchClock.Stop();
            if (_shared is not null) pairs = pairs.Plus(_shared.call(x));
            LastLoads = counted;
            LastRouting = null;
            return pairs.view(shape).MoveToOuterDisposeScope();
        }

        var order = flatExperts.sort(-1, descending: false, stable: true).Indices;
        var tokenOf = order.div(KeptScalars.OfInteger(k), rounding_mode: RoundingMode.floor);
        var counts = flatExperts.bincount(null, _spec.RoutedExperts).cpu().data<long>().ToArray();
        var gathered = x.index_select(0, tokenOf);
        var outputs = new List<Tensor>();
        long offset = 0;
        DispatchClock.Stop();
        for (int expert = 0; expert < counts.Length; expert++)
        {
            if (counts[expert] == 0) continue;
            outputs.Add(_experts[expert].call(gathered.narrow(0, offset, counts[expert])));
            offset += counts[expert];
        }

        DispatchClock.Start();
        var weighted = cat(outputs, 0) * routing.Weights.flatten().index_select(0, order).unsqueeze(1);
        var y = zeros_like(x).index_add(0, tokenOf, weighted, KeptScalars.Of(1.0));
        DispatchClock.Stop();
        if (_shared is not null) y = y.Plus(_shared.call(x));

        LastLoads = counts;
        LastRouting = KeepRouting
            ? new Routing(routing.Weights.detach().DetachFromDisposeScope(), routing.Experts.DetachFromDisposeScope(), routing.Scores.DetachFromDisposeScope())
            : null;
        return y.view(shape).MoveToOuterDisposeScope();
    }

    /// <summary>Most (token, expert) pairs the batched path takes: decoding sizes, where per-expert dispatch is all overhead.</summary>
    public const int BatchedExpertPairs = 64;

    /// <summary>Largest routed-expert weight count (all experts, three matrices) of a model whose decoding takes the batched path: small models.</summary>
    public const long BatchedExpertElements = 1L << 22;

    /// <summary>
    /// Whether a call with <paramref name="pairs"/> (token, expert) pairs runs every pair in one batched product over the
    /// experts' stacked weights: without gradients (decoding), at FP32, for a few pairs of a small model. The arithmetic is
    /// the per-expert path's; its cost stops growing with the number of distinct experts the tokens touch (a two-token
    /// checking pass of self-speculative decoding otherwise costs 1.44× a one-token pass on TinySeek).
    /// </summary>
    private bool UsesBatchedExperts(long pairs) =>
        !is_grad_enabled() && !KeepRouting && pairs <= BatchedExpertPairs
        && _experts[0].Format == ModelCompiler.NumericFormat.Fp32
        && 3L * _spec.RoutedExperts * _spec.ExpertIntermediateSize * _experts[0].GateWeight.shape[1] <= BatchedExpertElements;

    /// <summary>Σ_k w_tk · expert_{e_tk}(x_t) for every token, as three batched matrix products over the pairs.</summary>
    private Tensor BatchedExperts(Tensor x, Tensor experts, Tensor weights, long k)
    {
        var token = KeptScalars.Range(0, x.shape[0]).to(x.device).repeat_interleave(k);               // token of each pair
        var inputs = x.index_select(0, token).unsqueeze(-1);                                          // [P, H, 1]
        // Each pair's expert, read on the host (P ≤ 64): only the chosen experts' weights are copied, not all of them.
        var chosen = experts.cpu().data<long>().ToArray().Select(e => _experts[(int)e]).ToList();
        var gate = stack(chosen.Select(e => e.GateWeight));                                           // [P, I, H]
        var up = stack(chosen.Select(e => e.UpWeight));
        var down = stack(chosen.Select(e => e.DownWeight));                                           // [P, H, I]
        var hidden = nn.functional.silu(bmm(gate, inputs)) * bmm(up, inputs);                         // [P, I, 1]
        var outputs = bmm(down, hidden).squeeze(-1) * weights.unsqueeze(1).to(x.dtype);               // [P, H]
        return zeros_like(x).index_add(0, token, outputs, KeptScalars.Of(1.0));
    }
}
