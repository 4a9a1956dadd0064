using ModelCompiler.Planning;
using ModelCompiler.Torch.Parallel;
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
/// one index_add. Parameters: <c>gate.*</c>, <c>experts.{i}.*</c>, <c>shared_experts.*</c>. With
/// <see cref="DistributeExperts"/> the routed experts are spread over an expert-parallel group and reached by all-to-all.
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
    private ExpertParallelGroup? _parallel;

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

    /// <summary>The group the routed experts are spread over, or null when this process holds all of them.</summary>
    public ExpertParallelGroup? ExpertParallel => _parallel;

    /// <summary>
    /// Spreads the routed experts over <paramref name="group"/>: this rank keeps its experts and releases the others' weights,
    /// which stay registered as empty tensors without gradient, so that parameter names keep their expert indices. Call it on
    /// every rank, with the same weights everywhere (the model built from one seed): the experts a rank keeps are then those of
    /// the single-process model.
    /// </summary>
    public void DistributeExperts(ExpertParallelGroup group)
    {
        if (group.RoutedExperts != _spec.RoutedExperts)
        {
            throw new ArgumentException($"the group spreads {group.RoutedExperts} experts; this layer has {_spec.RoutedExperts}", nameof(group));
        }

        if (_parallel is not null) throw new InvalidOperationException("the experts are already spread over a group");
        _parallel = group;
        using var _ = no_grad();
        for (int expert = 0; expert < _experts.Count; expert++)
        {
            if (group.Holds(expert)) continue;
            foreach (var parameter in _experts[expert].parameters())
            {
                parameter.requires_grad = false;
                parameter.set_(empty(0, dtype: parameter.dtype, device: parameter.device));
            }
        }
    }

    /// <summary>The parameters of the routed experts this process holds (all of them without expert parallelism).</summary>
    public IEnumerable<Parameter> HeldExpertParameters() =>
        Enumerable.Range(0, _experts.Count).Where(e => _parallel?.Holds(e) ?? true).SelectMany(e => _experts[e].parameters());

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
        if (_parallel is not null)
        {
            DispatchClock.Stop(); // the exchanges are counted in the step's forward and backward times
            var spread = ExpertParallelExperts(x, routing, _parallel);
            if (_shared is not null) spread = spread.Plus(_shared.call(x));
            LastLoads = flatExperts.bincount(null, _spec.RoutedExperts).cpu().data<long>().ToArray();
            LastRouting = KeepRouting
                ? new Routing(routing.Weights.detach().DetachFromDisposeScope(), routing.Experts.DetachFromDisposeScope(), routing.Scores.DetachFromDisposeScope())
                : null;
            return spread.view(shape).MoveToOuterDisposeScope();
        }

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

    /// <summary>
    /// Σ_k w_tk · expert_{e_tk}(x_t) with the experts spread over <paramref name="group"/>. Dispatch: for each rank d in turn,
    /// the tokens with at least one expert on d (in token order) travel once, with their K gate weights (zero for the slots whose
    /// expert is elsewhere) and, separately, those experts' local indices. Each rank runs its experts on what it received,
    /// grouped by expert as the single-process path does, and sums each row's weighted outputs; combine sends each row back
    /// and the sender adds the rows of a token together. Both exchanges are differentiable; the received rows always feed the
    /// combined output (times zero where a rank received nothing to compute), so every rank runs both backward exchanges.
    /// </summary>
    private Tensor ExpertParallelExperts(Tensor x, Routing routing, ExpertParallelGroup group)
    {
        long tokens = x.shape[0], hidden = x.shape[1];
        int k = _spec.ActivatedExperts, ranks = group.Size, perRank = group.ExpertsPerRank;
        long[] experts = routing.Experts.cpu().data<long>().ToArray();
        var sendRows = new List<long>();
        var sendIds = new List<long>();
        var sendCounts = new int[ranks];
        for (int d = 0; d < ranks; d++)
        {
            for (long t = 0; t < tokens; t++)
            {
                bool any = false;
                for (int slot = 0; slot < k; slot++) any |= experts[(t * k) + slot] / perRank == d;
                if (!any) continue;
                sendRows.Add(t);
                for (int slot = 0; slot < k; slot++)
                {
                    long expert = experts[(t * k) + slot];
                    sendIds.Add(expert / perRank == d ? expert - ((long)d * perRank) : -1);
                }

                sendCounts[d]++;
            }
        }

        var rows = tensor(sendRows.ToArray(), device: x.device);
        var ids = tensor(sendIds.ToArray(), [sendRows.Count, k], device: x.device);
        var weights = routing.Weights.index_select(0, rows).to(ScalarType.Float32).masked_fill(ids.lt(KeptScalars.OfInteger(0)), KeptScalars.Of(0.0));
        var receiveCounts = group.ExchangeCounts(sendCounts);
        long[] receivedIds = group.Exchange(sendIds.ToArray(), k, sendCounts, receiveCounts);
        var received = ExpertExchange.Apply(cat([x.index_select(0, rows).to(ScalarType.Float32), weights], 1), group, sendCounts, receiveCounts);
        var inputs = received.narrow(1, 0, hidden).to(x.dtype);
        var gateWeights = received.narrow(1, hidden, k);

        // The (row, slot) pairs for this rank's experts, sorted by expert (stable: rows in order within an expert).
        var pairs = Enumerable.Range(0, receivedIds.Length).Where(i => receivedIds[i] >= 0).OrderBy(i => receivedIds[i]).ToArray();
        var outputs = inputs.mul(KeptScalars.Of(0.0));
        if (pairs.Length > 0)
        {
            var pairIndex = tensor(pairs.Select(i => (long)i).ToArray(), device: x.device);
            var rowOf = pairIndex.div(KeptScalars.OfInteger(k), rounding_mode: RoundingMode.floor);
            var gathered = inputs.index_select(0, rowOf);
            var results = new List<Tensor>();
            long offset = 0;
            foreach (var run in pairs.GroupBy(i => receivedIds[i]))
            {
                int count = run.Count();
                results.Add(_experts[group.FirstExpert + (int)run.Key].call(gathered.narrow(0, offset, count)));
                offset += count;
            }

            var weighted = cat(results, 0) * gateWeights.flatten().index_select(0, pairIndex).unsqueeze(1).to(x.dtype);
            outputs = outputs.index_add(0, rowOf, weighted, KeptScalars.Of(1.0));
        }

        var returned = ExpertExchange.Apply(outputs.to(ScalarType.Float32), group, receiveCounts, sendCounts).to(x.dtype);
        return zeros_like(x).index_add(0, rows, returned, KeptScalars.Of(1.0));
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
